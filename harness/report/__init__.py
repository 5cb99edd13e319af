"""Comparison reports from run folders. Needs the ``report`` extra (pandas, matplotlib, scipy)."""

from __future__ import annotations


def build_report(run_dirs, out_dir, *, title=None):
    """Write report.md, report.html and utterances.csv for ``run_dirs`` into ``out_dir``; return their paths."""
    from .render import build_report as _build

    return _build(run_dirs, out_dir, title=title)
