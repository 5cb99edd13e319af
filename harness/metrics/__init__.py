"""Quality and intelligibility metrics: registry, per-utterance scoring and corpus aggregation.

>>> from harness.metrics import get_metrics, Sample
>>> [m.name for m in get_metrics("wer,cer")]
['wer', 'cer']

Pure per-sample functions live in :mod:`harness.metrics.functional`; :func:`score_run` scores a run folder.
Importing this package is cheap: heavy packages (pesq, pystoi, onnxruntime, librosa, torch) load on first use.
"""

from __future__ import annotations

from collections.abc import Sequence

from .core import (
    NEEDS_MODEL,
    NEEDS_REF_AUDIO,
    NEEDS_REF_TEXT,
    NEEDS_TRANSCRIPT,
    NO_JUDGE,
    Metric,
    MetricAggregator,
    MetricResult,
    MetricUnavailable,
    Sample,
    aggregate,
)

__all__ = [
    "NEEDS_MODEL",
    "NEEDS_REF_AUDIO",
    "NEEDS_REF_TEXT",
    "NEEDS_TRANSCRIPT",
    "NO_JUDGE",
    "Metric",
    "MetricAggregator",
    "MetricResult",
    "MetricUnavailable",
    "Sample",
    "aggregate",
    "metric_registry",
    "get_metrics",
    "score_run",
]


def metric_registry() -> dict[str, Metric]:
    """Every registered metric by name (built-ins and plugins, through the ``register_metrics`` hook)."""
    from ..plugins import load_plugins, pm

    load_plugins()
    found: dict[str, Metric] = {}

    def register(metric: Metric) -> None:
        if metric.name in found and found[metric.name] is not metric:
            raise ValueError(f"Metric {metric.name!r} is registered twice (second: {metric.fn!r})")
        found[metric.name] = metric

    pm.hook.register_metrics(register=register)
    return found


def get_metrics(names: str | Sequence[str] | None = None) -> list[Metric]:
    """Metrics by name (comma-separated string or list); a group name (``dnsmos``) expands to its members.

    ``None`` or ``"all"`` gives every registered metric. Unknown names raise ``ValueError`` listing the known ones.
    """
    registry = metric_registry()
    if names is None or names == "all" or names == ["all"]:
        return list(registry.values())
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: list[Metric] = []
    for name in names:
        members = [m for m in registry.values() if m.name == name or m.group == name]
        if not members:
            groups = sorted({m.group for m in registry.values() if m.group})
            raise ValueError(
                f"Unknown metric {name!r}; known metrics: {', '.join(sorted(registry))} (groups: {', '.join(groups)})"
            )
        out.extend(m for m in members if m not in out)
    return out


def score_run(run_dir, metrics=None, judge=None, **kwargs) -> dict:
    """Score a run folder; see :func:`harness.metrics.scoring.score_run`."""
    from .scoring import score_run as _score_run

    return _score_run(run_dir, metrics=metrics, judge=judge, **kwargs)
