"""One plugin manager for the process.

Built-in plugins load through the same entry-point route as third-party ones; ``S2S_BENCH_LOAD_PLUGINS``
(a comma-separated list of plugin names, empty for built-ins only) limits which installed plugins load.
Tests set ``harness.plugins._testing = True`` (done by ``tests/conftest.py``) so installed plugins never leak in.
"""

from __future__ import annotations

import importlib
import os

import pluggy

from . import hookspecs

DEFAULT_PLUGINS = (
    "backends.loopback",
    "backends.cascade",
    "backends.seamless",
    "backends.speechgpt",
    "backends.custom",
    "backends.remote",
    "harness.datasets",
    "harness.turns",
    "harness.metrics.builtin",
)

ENV_VAR = "S2S_BENCH_LOAD_PLUGINS"
_testing = False

pm = pluggy.PluginManager("s2s_bench")
pm.add_hookspecs(hookspecs)
_loaded = False


def load_plugins() -> None:
    """Load built-in plugins, then the entry-point group ``s2s_bench`` (once per process)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in DEFAULT_PLUGINS:
        # Built-in plugin modules import heavy packages lazily, so importing them is cheap and never fails
        # for a missing optional dependency.
        mod = importlib.import_module(name)
        if not pm.is_registered(mod):
            pm.register(mod, name)
    if _testing:
        return
    wanted = os.environ.get(ENV_VAR)
    if wanted is None:
        pm.load_setuptools_entrypoints("s2s_bench")
        return
    names = {n.strip() for n in wanted.split(",") if n.strip()}
    if names:
        from importlib.metadata import entry_points

        for ep in entry_points(group="s2s_bench"):
            if ep.name in names and pm.get_plugin(ep.name) is None:
                pm.register(ep.load(), ep.name)
