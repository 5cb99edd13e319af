"""Comparison reports from run folders. Needs the ``report`` extra (pandas, matplotlib, scipy)."""

from __future__ import annotations


def build_report(run_dirs, out_dir, *, title=None, ttfa_axis="auto"):
    """Write report.md, report.html and utterances.csv for ``run_dirs`` into ``out_dir``; return their paths."""
    from .render import build_report as _build

    return _build(run_dirs, out_dir, title=title, ttfa_axis=ttfa_axis)


def build_history(run_dirs, out_dir, *, title=None):
    """Write history.md, history.html and history.json (each metric per commit) into ``out_dir``."""
    from .history import build_history as _build

    return _build(run_dirs, out_dir, title=title)
