"""Plugin hooks. A plugin is any module or object with functions marked ``@hookimpl``."""

import pluggy

hookspec = pluggy.HookspecMarker("s2s_bench")
hookimpl = pluggy.HookimplMarker("s2s_bench")


@hookspec
def register_backends(register):
    """Register backend classes: ``register(BackendClass, aliases=())``."""


@hookspec
def register_datasets(register):
    """Register datasets: ``register(name, factory, description="")``; factory(**kw) yields utterances."""


@hookspec
def register_metrics(register):
    """Register metrics: ``register(metric)`` where metric follows ``harness.metrics.Metric``."""


@hookspec
def register_asr_judges(register):
    """Register ASR judges: ``register(name, factory)``; factory(**options) returns a judge."""
