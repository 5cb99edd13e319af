"""Metric contract, per-utterance samples and results, corpus aggregation with bootstrap intervals.

A metric is a :class:`Metric`: a name, what it needs (:data:`NEEDS_REF_AUDIO`, :data:`NEEDS_REF_TEXT`,
:data:`NEEDS_TRANSCRIPT`, :data:`NEEDS_MODEL`), its unit, whether higher is better and how a corpus aggregates
(``"mean"`` of per-utterance values, ``"ratio"`` = sum of numerators / sum of denominators as for WER, or
``"chrf"`` = chrF from summed n-gram statistics). ``compute(sample)`` returns a :class:`MetricResult`; it never
raises for a missing package, model or input: the value is then ``None`` and ``reason`` says why ("n/a: ...").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NEEDS_REF_AUDIO = "reference audio"
NEEDS_REF_TEXT = "reference text"
NEEDS_TRANSCRIPT = "ASR judge"
NEEDS_MODEL = "model"

N_BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0
METRICS_EXTRA = "pip install 's2s-bench[metrics]'"
NO_JUDGE = "n/a: no ASR judge (set --asr-judge whisper:path=/local/whisper)"


@dataclass
class Sample:
    """What metrics may look at for one utterance. Audio is float mono; rates in Hz.

    ``audio``: the system's output (the response). ``ref_audio``: what it is compared with (the input for a codec or
    loopback, a reference answer otherwise). ``ref_text``: the words the output should say. ``transcript``: the
    ASR judge's transcript of ``audio``. ``cache`` holds intermediate results shared by metrics of one sample
    (the aligned 16 kHz pair, the DNSMOS scores) so a model runs once per sample.
    """

    id: str
    audio: np.ndarray | None = None
    sr: int | None = None
    ref_audio: np.ndarray | None = None
    ref_sr: int | None = None
    ref_text: str | None = None
    transcript: str | None = None
    cache: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class MetricResult:
    """One metric on one utterance: ``value`` (``None`` when not applicable, then ``reason`` says why),
    ``stats`` (numbers a corpus aggregate sums, e.g. errors and reference words), ``detail`` (e.g. sub/del/ins)."""

    value: float | None
    reason: str | None = None
    stats: tuple[float, ...] | None = None
    detail: dict[str, Any] | None = None

    @classmethod
    def na(cls, reason: str) -> MetricResult:
        return cls(None, reason if reason.startswith("n/a") else f"n/a: {reason}")

    def to_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"value": self.value}
        if self.reason:
            rec["reason"] = self.reason
        if self.stats is not None:
            rec["stats"] = list(self.stats)
        if self.detail:
            rec["detail"] = self.detail
        return rec


class MetricUnavailable(Exception):
    """Raised inside a metric's compute function when it cannot run (missing package/model); becomes ``n/a``."""


@dataclass(frozen=True)
class Metric:
    """A registered metric. ``fn(sample) -> float | MetricResult`` may raise :class:`MetricUnavailable`,
    ``ModuleNotFoundError`` (both become ``n/a`` with the reason) or ``ValueError`` (bad input: ``n/a`` naming
    the problem)."""

    name: str
    fn: Callable[[Sample], float | MetricResult]
    unit: str
    higher_is_better: bool
    needs: tuple[str, ...] = ()
    aggregation: str = "mean"
    description: str = ""
    group: str | None = None
    """Several metrics computed together (e.g. the four DNSMOS scores) share a group name usable in --metrics."""

    def __post_init__(self) -> None:
        if self.aggregation not in ("mean", "ratio", "chrf"):
            raise ValueError(
                f"Expected argument `aggregation` to be 'mean', 'ratio' or 'chrf' but got {self.aggregation!r}"
            )

    def compute(self, sample: Sample) -> MetricResult:
        """Score one sample; never raises for missing inputs, packages or models (``n/a`` with a reason)."""
        missing = self.missing_inputs(sample)
        if missing:
            return MetricResult.na(missing)
        try:
            out = self.fn(sample)
        except MetricUnavailable as exc:
            return MetricResult.na(str(exc))
        except ModuleNotFoundError as exc:
            msg = (
                str(exc) if "pip install" in str(exc) else f"{exc.name or exc} not installed: {METRICS_EXTRA}"
            )
            return MetricResult.na(msg)
        except ValueError as exc:
            return MetricResult.na(f"{sample.id}: {exc}")
        except Exception as exc:  # a metric failing on one clip is that clip's n/a, never the run's end
            return MetricResult.na(f"{sample.id}: {self.name} failed ({type(exc).__name__}: {exc})")
        if isinstance(out, MetricResult):
            return out
        value = float(out)
        if not np.isfinite(value):
            return MetricResult(None, f"n/a: {self.name} is not finite ({value}) for {sample.id}")
        return MetricResult(value)

    def missing_inputs(self, sample: Sample) -> str | None:
        if NEEDS_TRANSCRIPT not in self.needs:
            if sample.audio is None:
                return "n/a: no output audio"
            if sample.audio.size == 0:
                return "n/a: the output is empty (0 samples)"
            bad = int(np.sum(~np.isfinite(sample.audio)))
            if bad:
                return f"n/a: the output has {bad} NaN/inf samples"
        if NEEDS_REF_AUDIO in self.needs and sample.ref_audio is not None:
            bad = int(np.sum(~np.isfinite(sample.ref_audio)))
            if bad or sample.ref_audio.size == 0:
                return f"n/a: the reference audio is empty or has {bad} NaN/inf samples"
        if NEEDS_REF_AUDIO in self.needs and sample.ref_audio is None:
            return "n/a: no reference audio for this utterance"
        if NEEDS_REF_TEXT in self.needs and not sample.ref_text:
            return "n/a: no reference text for this utterance"
        if NEEDS_TRANSCRIPT in self.needs and sample.transcript is None:
            return NO_JUDGE
        return None

    def describe(self) -> dict[str, Any]:
        return {"unit": self.unit, "higher_is_better": self.higher_is_better}


def _ratio(stats: np.ndarray) -> float:
    den = stats[:, 1].sum()
    return float(stats[:, 0].sum() / den) if den > 0 else float("nan")


def _chrf(stats: np.ndarray) -> float:
    from .text import chrf_from_stats

    total = stats.sum(axis=0).reshape(-1, 3)
    return chrf_from_stats([tuple(row) for row in total])


def corpus_value(metric: Metric, results: Sequence[MetricResult]) -> float | None:
    """The corpus aggregate of the results that have a value (``None`` if none has)."""
    agg = aggregate(metric, results, n_boot=0)
    return agg.get("value")


def aggregate(
    metric: Metric, results: Sequence[MetricResult], n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED
) -> dict[str, Any]:
    """Corpus value, 95% percentile-bootstrap interval (utterances resampled with replacement, fixed seed),
    ``n`` utterances with a value, ``n_na``, unit and direction; or ``{"value": None, "reason"}`` when nothing
    could be scored (the most common per-utterance reason is given)."""
    ok = [r for r in results if r.value is not None]
    base = {**metric.describe(), "n": len(ok), "n_na": len(results) - len(ok)}
    if not ok:
        reasons = [r.reason for r in results if r.reason]
        reason = max(set(reasons), key=reasons.count) if reasons else "n/a: no utterances"
        return {"value": None, "reason": reason, **base}
    if metric.aggregation == "mean":
        arr = np.array([r.value for r in ok], dtype=np.float64)

        def stat(idx: np.ndarray) -> np.ndarray:
            return arr[idx].mean(axis=-1)

        value = float(arr.mean())
    else:
        arr = np.array([r.stats for r in ok], dtype=np.float64)
        if metric.aggregation == "ratio":
            value = _ratio(arr)

            def stat(idx: np.ndarray) -> np.ndarray:
                with np.errstate(invalid="ignore", divide="ignore"):
                    return arr[idx, 0].sum(axis=-1) / arr[idx, 1].sum(axis=-1)

        else:
            value = _chrf(arr)

            def stat(idx: np.ndarray) -> np.ndarray:
                return np.array([_chrf(arr[i]) for i in idx])

    ci = None
    if n_boot and len(ok) >= 2:
        rng = np.random.default_rng(seed)
        draws = stat(rng.integers(0, len(ok), size=(n_boot, len(ok))))
        draws = draws[np.isfinite(draws)]
        if draws.size:
            lo, hi = np.quantile(draws, [0.025, 0.975])
            ci = [float(lo), float(hi)]
    if not np.isfinite(value):
        return {"value": None, "reason": f"n/a: corpus {metric.name} undefined (empty references)", **base}
    return {"value": value, "ci95": ci, **base}


class MetricAggregator:
    """Stateful form (as in torchmetrics): ``update(sample)`` per utterance, ``compute()`` for the corpus."""

    def __init__(self, metric: Metric) -> None:
        self.metric = metric
        self.results: list[MetricResult] = []

    def update(self, sample: Sample) -> MetricResult:
        res = self.metric.compute(sample)
        self.results.append(res)
        return res

    def compute(self) -> dict[str, Any]:
        return aggregate(self.metric, self.results)

    def reset(self) -> None:
        self.results.clear()
