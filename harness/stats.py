"""Corpus statistics: percentiles and bootstrap confidence intervals, Kaplan-Meier quantiles for censored
latencies, and a binomial interval for rates. All deterministic (seeded), so a rescore is exact."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)
N_BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0
Z95 = 1.959963984540054


def _draws(values: np.ndarray, n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Bootstrap resamples of ``values`` as an ``(n_boot, n)`` array (the same indices for the same ``n``)."""
    rng = np.random.default_rng(seed)
    return values[rng.integers(0, values.size, size=(n_boot, values.size))]


def bootstrap_ci(
    values: np.ndarray,
    stat: str = "mean",
    level: float = 0.95,
    n_boot: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
) -> list[float] | None:
    """Percentile-bootstrap interval of the mean, the median or a percentile ``pNN``; ``None`` below 2 values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return None
    draws = _draws(values, n_boot, seed)
    if stat == "mean":
        stats = draws.mean(axis=1)
    elif stat in ("median", "p50"):
        stats = np.median(draws, axis=1)
    else:
        stats = np.percentile(draws, float(stat.lstrip("p")), axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]


def describe(values: Sequence[float | None]) -> dict:
    """n, mean, p50, p90, p95, p99 (each with a 95% bootstrap CI: ``mean_ci95``, ``p50_ci95``, ...), min and max
    of the non-missing values. Percentiles interpolate linearly (``numpy.percentile``)."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if arr.size == 0:
        return {"n": 0}
    draws = _draws(arr) if arr.size >= 2 else None
    out = {
        "n": int(arr.size),
        "mean": float(arr.mean()),
        "mean_ci95": None if draws is None else _interval(draws.mean(axis=1)),
        "min": float(arr.min()),
        "max": float(arr.max()),
    }
    for q in PERCENTILES:
        out[f"p{q}"] = float(np.percentile(arr, q))
        if draws is None:
            out[f"p{q}_ci95"] = None
        else:
            out[f"p{q}_ci95"] = _interval(np.percentile(draws, q, axis=1))
    return out


def _interval(stats: np.ndarray, level: float = 0.95) -> list[float]:
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]


def km_quantile(times: np.ndarray, observed: np.ndarray, q: float) -> float:
    """Kaplan-Meier estimate of the ``q`` quantile (0-1) of a time with right-censoring.

    ``observed[i]`` is True when ``times[i]`` is an event (a TTFA), False when it is a censoring time (no answer
    by then). The quantile is the first event time at which the estimated survival S(t) drops to ``1 - q`` or
    below; where S(t) equals ``1 - q`` exactly, the midpoint between that event and the next one (R's
    ``quantile.survfit``; without censoring the median is then the usual sample median). ``inf`` when S never
    gets that low (too many turns were never answered). Censorings tied with an event count as after it.
    """
    times = np.asarray(times, dtype=np.float64)
    observed = np.asarray(observed, dtype=bool)
    if times.size == 0:
        return math.inf
    order = np.lexsort((~observed, times))  # by time, events before censorings at the same time
    t, ev = times[order], observed[order]
    at_risk = times.size - np.arange(times.size)
    survival = np.cumprod(np.where(ev, 1.0 - 1.0 / at_risk, 1.0))
    target = 1.0 - q
    hit = np.flatnonzero(ev & (survival <= target + 1e-12))
    if not hit.size:
        return math.inf
    i = hit[0]
    if abs(survival[i] - target) <= 1e-12:
        later = np.flatnonzero(ev & (t > t[i]))
        if later.size:
            return float((t[i] + t[later[0]]) / 2)
    return float(t[i])


def km_describe(
    times: Sequence[float], observed: Sequence[bool], quantiles: Sequence[int] = (50, 95)
) -> dict:
    """Kaplan-Meier quantiles (``p50``, ``p95``) with 95% bootstrap intervals (turns resampled, seeded).

    A quantile that is not reached is ``None`` with ``pNN_reached: False``; an interval whose upper end is not
    reached in 2.5% or more of the resamples has ``None`` as its upper end.
    """
    t = np.asarray(times, dtype=np.float64)
    ev = np.asarray(observed, dtype=bool)
    out: dict = {"n": int(t.size), "n_events": int(ev.sum()), "n_censored": int((~ev).sum())}
    if t.size == 0:
        return out
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    idx = rng.integers(0, t.size, size=(N_BOOTSTRAP, t.size)) if t.size >= 2 else None
    for q in quantiles:
        value = km_quantile(t, ev, q / 100)
        out[f"p{q}"] = None if math.isinf(value) else value
        out[f"p{q}_reached"] = not math.isinf(value)
        if idx is None:
            out[f"p{q}_ci95"] = None
            continue
        boot = np.array([km_quantile(t[i], ev[i], q / 100) for i in idx])
        lo = float(np.quantile(boot, 0.025, method="lower"))
        hi = float(np.quantile(boot, 0.975, method="higher"))
        out[f"p{q}_ci95"] = None if math.isinf(lo) else [lo, None if math.isinf(hi) else float(hi)]
    return out


def wilson_ci(successes: int, n: int, z: float = Z95) -> list[float] | None:
    """Wilson score interval of a proportion (95% by default); None when ``n`` is 0."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [max(0.0, centre - half), min(1.0, centre + half)]
