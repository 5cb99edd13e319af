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


def latency_cdf(runs: list[RunData], metric: str = "ttfa_ms", ttfa_axis: str = "auto") -> bytes | None:
    """Empirical CDF of a per-utterance latency (ms) over *all* turns of every (run, backend), with p50 and p95
    guides: a curve levels off at the backend's answer rate, so unanswered turns are not hidden. The latency
    axis is logarithmic when :func:`log_ttfa_wanted` says so."""
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
    log_x = log_ttfa_wanted(runs, ttfa_axis)
    if log_x:
        ax.set_xscale("log")
    for q in (0.5, 0.95):
        ax.axhline(q, color="0.6", lw=0.8, ls=":")
        ax.text(ax.get_xlim()[1], q, f" p{int(q * 100)}", va="center", fontsize=8, color="0.4")
    name = metric.replace("_ms", "").upper()
    ax.set_xlabel(f"{name} (ms after the end of speech{', log scale' if log_x else ''})")
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


QUALITY_RANGES = (
    ("dnsmos", (1.0, 5.0)),
    ("utmos", (1.0, 5.0)),
    ("mos", (1.0, 5.0)),
    ("pesq", (1.0, 4.5)),
    ("stoi", (0.0, 1.0)),
    ("estoi", (0.0, 1.0)),
    ("speaker", (0.0, 1.0)),
    ("spk", (0.0, 1.0)),
    ("chrf", (0.0, 100.0)),
    ("wer", (0.0, 1.0)),
    ("cer", (0.0, 1.0)),
)
"""The full scale of bounded quality metrics (by name prefix): a quality axis spans it, so a 0.1 MOS gap looks
like the 0.1 of 4 that it is. Other metrics get an axis from zero."""


def log_ttfa_wanted(runs: list[RunData], axis: str = "auto") -> bool:
    """``log``: yes; ``linear``: no; ``auto``: when the backends' TTFA medians differ more than 10x (a fast backend
    would be squashed into a line at the left of a linear axis)."""
    if axis != "auto":
        return axis == "log"
    medians = [
        float(np.median(list(v.values())))
        for run in runs
        for key in run.backend_keys
        if (v := (run.samples.get(key) or {}).get("ttfa_ms"))
    ]
    medians = [m for m in medians if m > 0]
    return len(medians) > 1 and max(medians) / min(medians) > 10.0


def quality_range(metric: str, values: list[float]) -> tuple[float, float]:
    """The quality axis: the metric's full scale (extended to the data), else from zero to past the data."""
    low, high = min(values), max(values)
    for prefix, (lo, hi) in QUALITY_RANGES:
        if metric.lower().startswith(prefix):
            return min(lo, low), max(hi, high)
    pad = 0.1 * (max(abs(low), abs(high)) or 1.0)
    return min(0.0, low - (pad if low < 0 else 0.0)), max(0.0, high + pad)


def quality_vs_ttfa(runs: list[RunData], metric: str, ttfa_axis: str = "auto") -> bytes | None:
    """Quality against TTFA p50 per (run, backend), both with their 95% CIs as error bars, the Pareto front drawn
    through the points. Axes do not exaggerate gaps: TTFA from zero (or log, :func:`log_ttfa_wanted`), quality
    over the metric's full scale (:data:`QUALITY_RANGES`) or from zero."""
    from .tables import bootstrap_ci

    pts, names, xerr, yerr = [], [], [], []
    for run in runs:
        for key in run.backend_keys:
            if run.latency_only(key):
                continue
            ttfa = np.array(list((run.samples.get(key) or {}).get("ttfa_ms", {}).values()), dtype=float)
            value, ci, _, _ = quality_value(run, key, metric)
            if ttfa.size and value is not None:
                x = float(np.percentile(ttfa, 50))
                pts.append((x, value))
                names.append(label(run, key, len(runs) > 1))
                xci = bootstrap_ci(ttfa, "p50") or (x, x)
                xerr.append((x - xci[0], xci[1] - x))
                yci = (
                    ci
                    if isinstance(ci, (list, tuple)) and len(ci) == 2 and None not in ci
                    else (value, value)
                )
                yerr.append((value - yci[0], yci[1] - value))
    if not pts:
        return None
    higher = worse_direction(metric, runs[0]) < 0
    front = pareto_front(pts, higher)
    log_x = log_ttfa_wanted(runs, ttfa_axis)
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    xs, ys = zip(*pts, strict=False)
    ax.errorbar(
        xs,
        ys,
        xerr=np.array(xerr).T,
        yerr=np.array(yerr).T,
        fmt="o",
        ms=6,
        color="tab:blue",
        ecolor="0.45",
        elinewidth=1,
        capsize=3,
        zorder=3,
        label="p50 TTFA, quality (95% CI)",
    )
    for (x, y), name in zip(pts, names, strict=False):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    fx, fy = zip(*(pts[i] for i in front), strict=False)
    ax.scatter(
        fx, fy, s=140, facecolors="none", edgecolors="tab:red", lw=1.5, zorder=4, label="on the Pareto front"
    )
    x_hi = max(x + e[1] for x, e in zip(xs, xerr, strict=True))
    right = x_hi * (1.5 if log_x else 1.1)
    ax.step(list(fx) + [right], list(fy) + [fy[-1]], where="post", color="tab:red", lw=1.0, ls="--", zorder=2)
    if log_x:
        ax.set_xscale("log")
        ax.set_xlim(max(1.0, min(x - e[0] for x, e in zip(xs, xerr, strict=True)) / 1.5), right)
    else:
        ax.set_xlim(0, right)
    lo, hi = quality_range(
        metric,
        [y - e[0] for y, e in zip(ys, yerr, strict=True)] + [y + e[1] for y, e in zip(ys, yerr, strict=True)],
    )
    ax.set_ylim(lo, hi)
    ax.set_xlabel("TTFA p50 (ms" + (", log scale)" if log_x else ")"))
    ax.set_ylabel(f"{quality_label(metric)} ({'higher' if higher else 'lower'} is better)")
    ax.set_title(f"{quality_label(metric)} vs time to first audio")
    ax.grid(alpha=0.3, which="both" if log_x else "major")
    ax.legend(fontsize=8)
    return _png(fig)


def quality_label(metric: str) -> str:
    """An axis label that says which DNSMOS model a score comes from (P.835 or P.808)."""
    labels = {
        "dnsmos_ovrl": "DNSMOS OVRL (P.835 overall)",
        "dnsmos_sig": "DNSMOS SIG (P.835 speech)",
        "dnsmos_bak": "DNSMOS BAK (P.835 background)",
        "dnsmos_p808": "DNSMOS P.808 (overall)",
    }
    return labels.get(metric, metric)


def plotted_quality(names: list[str]) -> list[str]:
    """The quality metrics that get a Pareto plot: DNSMOS once, by its overall score (OVRL, else P.808); the
    sub-scores stay in the summary table."""
    dnsmos = [n for n in names if n.startswith("dnsmos_")]
    keep = next((n for n in ("dnsmos_ovrl", "dnsmos_p808") if n in dnsmos), dnsmos[0] if dnsmos else None)
    return [n for n in names if not n.startswith("dnsmos_") or n == keep]
