"""Seamless M4T v2 on a tiny random model of its real architecture (a FAKE: random weights, toy sizes)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

import baseline_models as bm  # noqa: E402

from backends import _hf, _presets  # noqa: E402
from backends.seamless import SeamlessBackend  # noqa: E402
from harness.backend import BackendError, OptionError  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = bm.build_seamless(tmp_path_factory.mktemp("seamless") / "m4t")
    yield path
    _hf.clear_shared()


def run_turn(backend, audio):
    session = backend.open_session()
    session.push(audio)
    session.end_input()
    chunks = []
    while not session.done:
        chunk = session.poll(timeout=5.0)
        if chunk is not None:
            chunks.append(chunk)
    return chunks


def test_text_marks_come_before_the_audio(model_dir):
    backend = SeamlessBackend(path=str(model_dir), device="cpu", max_new_tokens=12)
    backend.load()
    chunks = run_turn(backend, bm.silence_and_tone())
    marks = [m for c in chunks for m in c.marks]
    assert marks == ["text_first_token", "text_final", "tts_first_audio"]
    audio = chunks[-1].audio
    assert audio is not None and audio.dtype == np.float32 and audio.size > 0 and np.isfinite(audio).all()
    assert isinstance(chunks[-1].text, str)
    assert not backend.latency_only


def test_unknown_target_language_and_speaker_are_refused(model_dir):
    with pytest.raises(OptionError, match="tgt_lang.*tel"):
        SeamlessBackend(path=str(model_dir), device="cpu", tgt_lang="eng").load()
    with pytest.raises(OptionError, match="speaker_id"):
        SeamlessBackend(path=str(model_dir), device="cpu", speaker_id=7).load()


def test_missing_weights_say_what_to_download(tmp_path, monkeypatch):
    monkeypatch.delenv(_hf.MODELS_ENV, raising=False)
    with pytest.raises(BackendError, match="facebook/seamless-m4t-v2-large.*path="):
        SeamlessBackend(path=str(tmp_path), device="cpu").load()


def test_meta_implementation_names_its_missing_package():
    with pytest.raises(ModuleNotFoundError, match="not on PyPI"):
        SeamlessBackend(impl="seamless_communication", device="cpu").load()


def test_random_weights_generate_a_fixed_text_length(monkeypatch):
    monkeypatch.setitem(_presets.SEAMLESS_SIZES, "seamless-test", bm.SEAMLESS_TINY)
    seen = {}
    backend = SeamlessBackend(weights="random", path="seamless-test", device="cpu", max_new_tokens=9)
    backend.load()
    model = backend.model["model"]
    original = model.text_decoder.forward

    def spy(*args, **kwargs):
        seen["calls"] = seen.get("calls", 0) + 1
        return original(*args, **kwargs)

    monkeypatch.setattr(model.text_decoder, "forward", spy)
    chunks = run_turn(backend, bm.silence_and_tone(0.5))
    assert backend.latency_only
    assert chunks[-1].audio is not None
    assert seen["calls"] == 9 + 1  # 9 generated tokens, then one pass over them for the text-to-unit model
    _hf.clear_shared()
