"""Corpus statistics: percentiles and bootstrap confidence intervals (deterministic, so a rescore is exact)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)
N_BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0


def bootstrap_ci(
    values: np.ndarray,
    stat: str = "mean",
    level: float = 0.95,
    n_boot: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
) -> list[float] | None:
    """Percentile-bootstrap interval of the mean or median; ``None`` with fewer than 2 values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return None
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, values.size, size=(n_boot, values.size))]
    stats = draws.mean(axis=1) if stat == "mean" else np.median(draws, axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]


def describe(values: Sequence[float | None]) -> dict:
    """n, mean (with 95% CI), p50 (with 95% CI), p90, p95, p99, min, max of the non-missing values."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if arr.size == 0:
        return {"n": 0}
    out = {
        "n": int(arr.size),
        "mean": float(arr.mean()),
        "mean_ci95": bootstrap_ci(arr, "mean"),
        "p50_ci95": bootstrap_ci(arr, "median"),
        "min": float(arr.min()),
        "max": float(arr.max()),
    }
    for q in PERCENTILES:
        out[f"p{q}"] = float(np.percentile(arr, q))
    return out
