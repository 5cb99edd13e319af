"""History, as asv shows it: each metric per commit, one line per backend, the median with its 95% CI.

``s2s-bench history RUN_DIR ... --out DIR`` reads run folders (a gate's folder counts as its ``base`` and
``candidate`` runs), places each run at its git commit (``run.json``'s ``git``), orders the commits by commit time
(from this checkout's git when it knows them, else by when the runs were made) and pools the per-utterance values
of every run at one commit. A slow drift over many commits shows as a slope no single gate would flag.

Absolute milliseconds are comparable only on one machine class and under one way of measuring: runs from several
machine classes get one line per (backend, machine class), and the page warns when the runs were measured with
different settings or data.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import stats
from ..latency import LATENCY_METRICS
from .plots import _png, plotted_quality, quality_label
from .render import Section, mixed_runs, render_html, render_markdown
from .runs import RunData, load_run_folder
from .tables import quality_metric_names

HISTORY_SCHEMA = "s2s-bench.history/1"
HISTORY_LATENCY = ("ttfa_ms", "ttfa_eof_ms", "ttfb_ms", "rtf", "stall_ms", "input_lag_ms")
"""Latency metrics drawn (when a run has them), in this order."""


@dataclass
class Point:
    """The runs at one commit."""

    commit: str | None
    label: str
    when: float  # commit time (s since the epoch), else the earliest run's creation time
    runs: list[RunData]


def expand(paths: list[str | Path]) -> list[Path]:
    """Run folders; a gate's folder (with ``base/`` and ``candidate/``) stands for both of its runs."""
    out = []
    for path in map(Path, paths):
        if (path / "run.json").exists():
            out.append(path)
        elif (path / "base" / "run.json").exists() and (path / "candidate" / "run.json").exists():
            out += [path / "base", path / "candidate"]
        else:
            raise FileNotFoundError(
                f"{path} is neither a run folder (run.json) nor a gate's folder (base/, candidate/)"
            )
    return out


def _commit_info(commit: str) -> tuple[float | None, str]:
    """(commit time, subject) from this checkout's git, or (None, "") when it does not know the commit."""
    try:
        done = subprocess.run(
            ["git", "show", "-s", "--format=%ct %s", commit],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None, ""
    if done.returncode or not done.stdout.strip():
        return None, ""
    when, _, subject = done.stdout.strip().partition(" ")
    return float(when), subject


def _created(run: RunData) -> float:
    try:
        return datetime.fromisoformat(str(run.meta.get("created"))).timestamp()
    except ValueError:
        return 0.0


def points(runs: list[RunData]) -> list[Point]:
    """The runs grouped by commit (a dirty tree is its own point), ordered by commit time."""
    groups: dict[str, list[RunData]] = {}
    for run in runs:
        git = run.meta.get("git") or {}
        commit = git.get("commit")
        key = f"{commit or 'unknown commit'}{'+dirty' if git.get('dirty') else ''}"
        groups.setdefault(key, []).append(run)
    out = []
    for key, group in groups.items():
        commit = (group[0].meta.get("git") or {}).get("commit")
        when, subject = _commit_info(commit) if commit else (None, "")
        label = (commit[:8] if commit else "unknown") + ("+dirty" if key.endswith("+dirty") else "")
        if subject:
            label += f" {subject[:28]}"
        out.append(Point(commit, label, when if when is not None else min(map(_created, group)), group))
    return sorted(out, key=lambda p: (p.when, p.label))


def _machine(run: RunData) -> str:
    m = run.meta.get("machine") or {}
    return f"{m.get('cpu')} x{m.get('cpu_count')}" + (f", {m['gpu']}" if m.get("gpu") else "")


def series(pts: list[Point], metric: str) -> dict[str, list[tuple[int, float, float, float, int]]]:
    """{line: [(point index, median, ci low, ci high, n), ...]}: one line per backend (and machine class when the
    runs come from several)."""
    machines = {_machine(r) for p in pts for r in p.runs}
    out: dict[str, list] = {}
    for i, p in enumerate(pts):
        pooled: dict[str, list[float]] = {}
        for run in p.runs:
            for key in run.backend_keys:
                if metric not in LATENCY_METRICS and run.latency_only(key):
                    continue  # random weights: no quality
                vals = list(((run.samples.get(key) or {}).get(metric) or {}).values())
                line = key + (f" @ {_machine(run)}" if len(machines) > 1 else "")
                if vals:
                    pooled.setdefault(line, []).extend(vals)
        for line, vals in pooled.items():
            arr = np.asarray(vals, dtype=float)
            ci = stats.bootstrap_ci(arr, "p50") or [float(np.median(arr))] * 2
            out.setdefault(line, []).append((i, float(np.median(arr)), ci[0], ci[1], int(arr.size)))
    return out


def history_plot(pts: list[Point], metric: str) -> bytes | None:
    from matplotlib.figure import Figure

    lines = series(pts, metric)
    if not lines:
        return None
    fig = Figure(figsize=(max(7.5, 0.9 * len(pts) + 3), 4.2))
    ax = fig.add_subplot()
    for j, (line, rows) in enumerate(sorted(lines.items())):
        x = (
            np.array([r[0] for r in rows], dtype=float) + (j - (len(lines) - 1) / 2) * 0.04
        )  # bars side by side
        y = np.array([r[1] for r in rows])
        err = np.array([[r[1] - r[2] for r in rows], [r[3] - r[1] for r in rows]])
        ax.errorbar(x, y, yerr=err, fmt="o-", ms=4, capsize=3, lw=1.2, label=line)
    unit = " (ms)" if metric.endswith("_ms") else ""
    name = quality_label(metric) if not metric.endswith("_ms") else metric.removesuffix("_ms").upper()
    ax.set_xticks(range(len(pts)), [p.label for p in pts], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(f"median {name}{unit}")
    low = min(r[2] for rows in lines.values() for r in rows)
    ax.set_ylim(bottom=min(0.0, low))  # from zero: a drift is shown at its true size
    ax.set_title(f"{name} per commit (median, 95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def history_metrics(runs: list[RunData]) -> list[str]:
    have = {m for r in runs for per in r.samples.values() for m, v in per.items() if v}
    return [m for m in HISTORY_LATENCY if m in have] + plotted_quality(quality_metric_names(runs))


def build_history(run_dirs, out_dir, *, title: str | None = None) -> dict[str, Path]:
    """Write ``history.md`` (+ ``img/``), a self-contained ``history.html`` and ``history.json`` into ``out_dir``."""
    paths = expand(list(run_dirs))
    if not paths:
        raise FileNotFoundError("No run folder given")
    runs = [load_run_folder(p) for p in paths]
    pts = points(runs)
    out = Path(out_dir)
    (out / "img").mkdir(parents=True, exist_ok=True)
    note = (
        f"{len(runs)} runs at {len(pts)} commits, ordered by commit time. Each point pools the per-utterance values "
        "of the runs at that commit: the median with its 95% bootstrap CI, one line per backend; axes start at zero."
    )
    mixed = mixed_runs(runs)
    if mixed:
        note += (
            " **Warning: these runs were measured differently** ("
            + "; ".join(mixed)
            + "): read across them with care."
        )
    sections = [Section("Commits", note)]
    doc: dict = {
        "schema": HISTORY_SCHEMA,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    doc["commits"] = [{"commit": p.commit, "label": p.label, "runs": [r.source for r in p.runs]} for p in pts]
    doc["metrics"] = {}
    for metric in history_metrics(runs):
        png = history_plot(pts, metric)
        if png is None:
            continue
        sections.append(
            Section(
                f"{metric} per commit",
                "",
                image=png,
                image_name=f"history_{metric}.png",
                image_alt=f"{metric} per commit",
            )
        )
        doc["metrics"][metric] = {
            line: [
                {"commit": pts[i].label, "median": m, "ci95": [lo, hi], "n": n} for i, m, lo, hi, n in rows
            ]
            for line, rows in series(pts, metric).items()
        }
    for s in sections:
        if s.image:
            (out / "img" / s.image_name).write_bytes(s.image)
    name = title or "s2s-bench history"
    md = out / "history.md"
    md.write_text(render_markdown(name, runs, sections, "img"), encoding="utf-8")
    page = out / "history.html"
    page.write_text(render_html(name, runs, sections), encoding="utf-8")
    js = out / "history.json"
    js.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return {"markdown": md, "html": page, "json": js}
