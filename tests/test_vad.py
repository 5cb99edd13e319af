"""End of speech (harness.vad): silero-vad from its wheel, the energy fallback, the cache and its side effects."""

import json
import subprocess
import sys

import numpy as np
import pytest

from harness import vad

SR = 16000


def bursts(lead_s=0.5, speech_s=1.0, tail_s=1.0, seed=0):
    """Syllable-like tone bursts (200 ms on, 50 ms off) between silences with a -70 dBFS noise floor."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.2 * SR)) / SR
    syllable = 0.3 * np.sin(2 * np.pi * 180 * t) * np.hanning(t.size)
    speech = np.concatenate([np.concatenate([syllable, np.zeros(int(0.05 * SR))]) for _ in range(4)])
    speech = speech[: int(speech_s * SR)]
    x = np.concatenate([np.zeros(int(lead_s * SR)), speech, np.zeros(int(tail_s * SR))])
    return (x + 10 ** (-70 / 20) * rng.standard_normal(x.size)).astype(np.float32)


def telugu_with_silence(tail_s=1.0):
    espeak = pytest.importorskip("harness.datasets.espeak")
    speech = espeak.trim_silence(
        espeak.synthesize("నమస్కారం, మీరు ఎలా ఉన్నారు?", espeak.ESPEAK_VOICES[0], seed=1), SR, 0.0
    )
    x = np.concatenate([np.zeros(int(0.3 * SR), np.float32), speech, np.zeros(int(tail_s * SR), np.float32)])
    return x, 0.3 + speech.size / SR


def test_energy_finds_the_bursts_and_pads_them():
    found = vad.detect_speech(bursts(), SR, "energy")
    assert found.found and len(found.segments_s) == 1  # 50 ms gaps are merged (< 100 ms)
    start, end = found.segments_s[0]
    # the last burst ends at 0.5 + 3 * 0.25 + 0.2 = 1.45 s (its Hann tail is below -35 dB a little earlier)
    assert 0.44 <= start <= 0.5 and 1.40 <= end <= 1.45 + vad.SPEECH_PAD_MS / 1000 + 0.01
    assert found.trailing_silence_s == pytest.approx(found.duration_s - end)


def test_energy_finds_nothing_in_noise_floor_only():
    quiet = (10 ** (-70 / 20) * np.random.default_rng(1).standard_normal(SR)).astype(np.float32)
    found = vad.detect_speech(quiet, SR, "energy")
    assert not found.found and found.speech_end_s is None


@pytest.mark.skipif(not vad.silero_available(), reason="needs the vad extra: pip install 's2s-bench[vad]'")
def test_silero_finds_the_end_of_telugu_speech_before_a_second_of_silence():
    x, spoken_until = telugu_with_silence(1.0)
    found = vad.detect_speech(x, SR, "silero")
    assert found.found
    # silero's segments end at its 32 ms frames plus 30 ms of padding
    assert spoken_until - 0.15 <= found.speech_end_s <= spoken_until + 0.1
    assert 0.9 <= found.trailing_silence_s <= 1.15
    energy = vad.detect_speech(x, SR, "energy")
    assert abs(energy.speech_end_s - found.speech_end_s) < 0.15  # the fallback agrees closely on clean speech
    info = vad.vad_info("silero")
    assert info["method"] == "silero" and info["params"]["threshold"] == 0.5 and info["version"]


def test_the_cache_is_keyed_by_the_audio_and_the_method(tmp_path):
    x = bursts()
    first = vad.cached_speech(x, SR, "energy", tmp_path)
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1 and vad.cached_speech(x, SR, "energy", tmp_path) == first
    files[0].write_text(json.dumps({"segments_s": [[0.0, 0.123]], "duration_s": 2.5}))  # prove it is read
    assert vad.cached_speech(x, SR, "energy", tmp_path).speech_end_s == pytest.approx(0.123)
    vad.cached_speech(bursts(seed=2), SR, "energy", tmp_path)  # other audio: another entry
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="Expected argument `vad` to be one of auto, silero, energy"):
        vad.resolve_method("webrtc")


@pytest.mark.skipif(not vad.silero_available(), reason="needs the vad extra")
def test_loading_silero_leaves_torchs_thread_count_alone():
    # silero_vad's import sets torch's threads to 1 for the whole process; a backend measured after it would
    # silently run on one core. harness.vad undoes it.
    code = (
        "import torch; torch.set_num_threads(2); from harness import vad; "
        "vad.detect_speech(__import__('numpy').zeros(16000, 'float32') + 0.1, 16000, 'silero'); "
        "print(torch.get_num_threads())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "2"


def test_data_that_knows_its_speech_end_is_not_second_guessed():
    from harness.data import Utterance
    from harness.datasets import synthetic_clips

    clip = next(iter(synthetic_clips(n=1)))  # made by code: its voice ends where the file ends
    plain = Utterance(id="plain", sample_rate=SR, audio_array=bursts())
    found = vad.speech_of_utterances([clip, plain], "energy")
    assert found[clip.id].speech_end_from == "annotation"
    assert found[clip.id].speech_end_s == pytest.approx(clip.audio_array.size / SR)
    assert found["plain"].speech_end_from == "vad" and found["plain"].speech_end_s < 1.5


def test_without_silero_auto_falls_back_to_energy_and_silero_says_what_to_install(monkeypatch):
    monkeypatch.setattr(vad, "silero_available", lambda: False)
    assert vad.resolve_method("auto") == "energy" and vad.vad_info("auto")["method"] == "energy"
    with pytest.raises(ModuleNotFoundError, match=r"pip install 's2s-bench\[vad\]'"):
        vad.resolve_method("silero")
