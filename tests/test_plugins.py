"""Plugin registration, backend specs and option validation."""

import pytest

from harness.backend import BackendSpec, OfflineBackend, Option, OptionError, OutputChunk
from harness.hookspecs import hookimpl
from harness.plugins import pm
from harness.registry import DuplicateBackendError, UnknownBackendError, backend_classes, create_backend


def test_spec_round_trip():
    spec = BackendSpec.parse("loopback:delay_ms=150, chunk_ms=10")
    assert spec.name == "loopback" and spec.options == {"delay_ms": "150", "chunk_ms": "10"}
    assert str(spec) == "loopback:delay_ms=150,chunk_ms=10"


@pytest.mark.parametrize("bad", ["", ":x=1", "loopback:delay_ms", "loopback:a=1,a=2"])
def test_bad_specs_are_usage_errors(bad):
    with pytest.raises(OptionError):
        BackendSpec.parse(bad)


def test_options_are_typed_and_validated():
    b = create_backend("loopback:delay_ms=150,trim=false,every=3")
    assert b.opts["delay_ms"] == 150.0 and b.opts["trim"] is False and b.opts["every"] == 3
    with pytest.raises(OptionError, match="delay_ms.*float.*'soon'"):
        create_backend("loopback:delay_ms=soon")
    with pytest.raises(OptionError, match="known options: chunk_ms, delay_ms"):
        create_backend("loopback:delai_ms=1")
    with pytest.raises(OptionError, match=">= 0"):
        create_backend("loopback:delay_ms=-5")


def test_unknown_backend_lists_known_ones():
    with pytest.raises(UnknownBackendError, match="known backends: .*loopback"):
        create_backend("nope")


class EchoTwice(OfflineBackend):
    """A third-party style offline backend: answers with the input played twice."""

    name = "echo-twice"
    options = {"gain": Option(float, 1.0, "output gain")}

    def respond(self, audio, emit, stop):
        emit(OutputChunk(marks=("asr_final",)))
        emit(OutputChunk(audio=self.opts["gain"] * audio))
        emit(OutputChunk(audio=self.opts["gain"] * audio))


class ThirdParty:
    @hookimpl
    def register_backends(self, register):
        register(EchoTwice, aliases=("echo2",))


class Clash:
    @hookimpl
    def register_backends(self, register):
        register(EchoTwice.__class__("Other", (EchoTwice,), {"name": "loopback"}))


def test_third_party_backend_registers_through_the_same_hook(tmp_path):
    import numpy as np

    from harness.data import Utterance
    from harness.results import load_run
    from harness.runner import run_benchmark

    plugin = ThirdParty()
    pm.register(plugin)
    try:
        assert backend_classes()["echo2"] is EchoTwice
        utt = Utterance(id="u", sample_rate=16000, audio_array=0.1 * np.ones(3200, np.float32))
        r = load_run(
            run_benchmark(
                ["echo2:gain=0.5"], utterances=[utt], out=tmp_path / "r", pacing="fast", progress=False
            )
        )
        s = r.summary["echo2:gain=0.5"]
        assert s["n_ok"] == 1 and s["audio_out_s"] == pytest.approx(0.4) and "asr_final" in s["marks"]
    finally:
        pm.unregister(plugin)


def test_duplicate_backend_id_is_rejected():
    plugin = Clash()
    pm.register(plugin)
    try:
        with pytest.raises(DuplicateBackendError, match="'loopback' is registered twice"):
            backend_classes()
    finally:
        pm.unregister(plugin)


def test_env_var_limits_which_installed_plugins_load(monkeypatch):
    import importlib.metadata as md

    import harness.plugins as plugins

    class FakeEP:
        def __init__(self, name):
            self.name = name

        def load(self):
            outer = self

            class P:
                @hookimpl
                def register_backends(self, register):
                    register(type(f"B{outer.name}", (EchoTwice,), {"name": f"ep-{outer.name}"}))

            return P()

    monkeypatch.setattr(md, "entry_points", lambda group: [FakeEP("one"), FakeEP("two")])
    monkeypatch.setattr(plugins, "_testing", False)
    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.setenv(plugins.ENV_VAR, "two")
    try:
        plugins.load_plugins()
        names = set(backend_classes())
        assert "ep-two" in names and "ep-one" not in names and "loopback" in names
    finally:
        for name in ("one", "two"):
            if pm.get_plugin(name) is not None:
                pm.unregister(name=name)
