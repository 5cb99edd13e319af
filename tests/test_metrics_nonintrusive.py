"""DNSMOS from the speechmos wheel (offline, tiled short clips) and resemblyzer speaker similarity."""

import socket

import numpy as np
import pytest

from harness.datasets import synthetic_clips
from harness.metrics import Sample, get_metrics
from harness.metrics.nonintrusive import DNSMOS_SR, DNSMOS_WINDOW_S, tile_to_window

pytest.importorskip("speechmos")
pytest.importorskip("onnxruntime")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_tile_to_window_repeats_short_clips_to_exactly_one_window():
    x = np.arange(5, dtype=np.float32)
    assert tile_to_window(x, 12).tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    y = np.ones(20, np.float32)
    assert tile_to_window(y, 12) is y  # long clips untouched


def test_dnsmos_scores_a_short_clip_offline_like_speechmos_does(no_network):
    from speechmos import dnsmos as speechmos_dnsmos

    clip = next(iter(synthetic_clips(n=1, seed=5))).audio_array  # about 1-3 s
    assert clip.size < DNSMOS_WINDOW_S * DNSMOS_SR
    s = Sample("short", audio=clip, sr=16000)
    got = {m.name: m.compute(s) for m in get_metrics("dnsmos")}
    assert set(got) == {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"}
    for r in got.values():
        assert r.value is not None and 1.0 <= r.value <= 5.0, r
    # speechmos's own scoring of the same 9.01 s tiled window gives the same numbers
    tiled = tile_to_window(clip, int(DNSMOS_WINDOW_S * DNSMOS_SR))
    ref = speechmos_dnsmos.run(tiled, 16000)
    assert got["dnsmos_ovrl"].value == pytest.approx(ref["ovrl_mos"], abs=1e-5)
    assert got["dnsmos_sig"].value == pytest.approx(ref["sig_mos"], abs=1e-5)
    assert got["dnsmos_bak"].value == pytest.approx(ref["bak_mos"], abs=1e-5)
    assert got["dnsmos_p808"].value == pytest.approx(ref["p808_mos"], abs=1e-5)


def test_speaker_similarity_of_a_voice_with_itself_is_one_and_with_noise_is_lower(no_network):
    import importlib.util

    if importlib.util.find_spec("resemblyzer") is None:
        pytest.skip("resemblyzer not installed")
    clips = list(synthetic_clips(n=2, seed=7))
    a = clips[0].audio_array
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal(a.size)).astype(np.float32)
    (m,) = get_metrics("speaker_sim")
    same = m.compute(Sample("a", audio=a, sr=16000, ref_audio=a, ref_sr=16000))
    other = m.compute(Sample("a", audio=noise, sr=16000, ref_audio=a, ref_sr=16000))
    assert same.value == pytest.approx(1.0, abs=1e-4)
    assert other.value < same.value - 0.05
