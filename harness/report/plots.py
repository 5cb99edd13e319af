"""Report plots (matplotlib, Agg backend, no pyplot state): latency CDF, stage breakdown, quality vs TTFA Pareto.

Each function returns PNG bytes, or ``None`` when the runs hold nothing to draw (the report then says why).
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..gate import worse_direction  # noqa: E402
from .runs import RunData  # noqa: E402
from .tables import label, quality_value, stage_means  # noqa: E402

DPI = 110


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def latency_cdf(runs: list[RunData], metric: str = "ttfa_ms") -> bytes | None:
    """Empirical CDF of a per-utterance latency (ms) over *all* turns of every (run, backend), with p50 and p95
    guides: a curve levels off at the backend's answer rate, so unanswered turns are not hidden."""
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    drawn = 0
    for run in runs:
        for key in run.backend_keys:
            vals = np.sort(np.array(list((run.samples.get(key) or {}).get(metric, {}).values()), dtype=float))
            if vals.size == 0:
                continue
            n_turns = max(vals.size, len(run.status.get(key) or {}))
            y = np.arange(1, vals.size + 1) / n_turns
            ax.step(
                np.concatenate([[vals[0]], vals]),
                np.concatenate([[0.0], y]),
                where="post",
                label=f"{label(run, key, len(runs) > 1)} ({vals.size}/{n_turns} answered)",
            )
            drawn += 1
    if not drawn:
        return None
    for q in (0.5, 0.95):
        ax.axhline(q, color="0.6", lw=0.8, ls=":")
        ax.text(ax.get_xlim()[1], q, f" p{int(q * 100)}", va="center", fontsize=8, color="0.4")
    name = metric.replace("_ms", "").upper()
    ax.set_xlabel(f"{name} (ms after the end of speech)")
    ax.set_ylabel("fraction of all turns")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{name} distribution per backend")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def stage_breakdown(runs: list[RunData]) -> bytes | None:
    """Stacked bars of mean stage durations for backends that emit marks (e.g. ASR -> LLM -> TTS -> audio)."""
    bars = []
    for run in runs:
        for key in run.backend_keys:
            stages = stage_means(run, key)
            if stages:
                bars.append((label(run, key, len(runs) > 1), stages))
    if not bars:
        return None
    fig = Figure(figsize=(7.5, 0.9 + 0.7 * len(bars)))
    ax = fig.add_subplot()
    colors = matplotlib.colormaps["tab10"].colors
    names: list[str] = []
    for row, (_, stages) in enumerate(bars):
        start = 0.0
        for name, at in stages:
            if name not in names:
                names.append(name)
            width = max(at - start, 0.0)
            color = colors[names.index(name) % len(colors)]
            ax.barh(
                row,
                width,
                left=start,
                color=color,
                label=name if names.index(name) == len(names) - 1 else None,
            )
            if width > 0:
                ax.text(
                    start + width / 2,
                    row,
                    f"{width:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white",
                )
            start = max(start, at)
    ax.set_yticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("mean ms after the end of speech (each segment: time until that stage's mark)")
    ax.set_title("Stage breakdown")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(
        handles,
        labels,
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.35 if len(bars) < 3 else -0.15),
        ncol=min(4, len(labels)),
    )
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of points not dominated by another (lower x is better; y better by ``higher_is_better``), by x."""
    order = sorted(
        range(len(points)), key=lambda i: (points[i][0], -points[i][1] if higher_is_better else points[i][1])
    )
    front, best = [], None
    for i in order:
        y = points[i][1]
        if best is None or (y > best if higher_is_better else y < best):
            front.append(i)
            best = y
    return front


def quality_vs_ttfa(runs: list[RunData], metric: str) -> bytes | None:
    """Scatter of a quality metric against TTFA p50 per (run, backend), with the Pareto front drawn through it."""
    pts, names = [], []
    for run in runs:
        for key in run.backend_keys:
            if run.latency_only(key):
                continue
            ttfa = list((run.samples.get(key) or {}).get("ttfa_ms", {}).values())
            value = quality_value(run, key, metric)[0]
            if ttfa and value is not None:
                pts.append((float(np.percentile(ttfa, 50)), value))
                names.append(label(run, key, len(runs) > 1))
    if not pts:
        return None
    higher = worse_direction(metric, runs[0]) < 0
    front = pareto_front(pts, higher)
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    xs, ys = zip(*pts, strict=False)
    ax.scatter(xs, ys, s=40, color="tab:blue", zorder=3)
    for (x, y), name in zip(pts, names, strict=False):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    fx, fy = zip(*(pts[i] for i in front), strict=False)
    ax.scatter(
        fx, fy, s=140, facecolors="none", edgecolors="tab:red", lw=1.5, zorder=4, label="on the Pareto front"
    )
    right = max(xs) + 0.05 * (max(xs) - min(xs) or 1.0)
    ax.step(list(fx) + [right], list(fy) + [fy[-1]], where="post", color="tab:red", lw=1.0, ls="--", zorder=2)
    ax.set_xlabel("TTFA p50 (ms)")
    ax.set_ylabel(f"{metric} ({'higher' if higher else 'lower'} is better)")
    ax.set_title(f"{metric} vs time to first audio")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)
