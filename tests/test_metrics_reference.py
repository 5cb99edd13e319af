"""Reference metrics: equal to the reference packages on the same files; delay, length and rate mismatch."""

import sys

import numpy as np
import pytest
import soundfile as sf

from harness.audio import read_audio, resample
from harness.datasets import synthetic_clips
from harness.metrics import Sample, get_metrics
from harness.metrics.reference import align_to_reference, log_mel_distance, pesq_wb, si_sdr, stoi

pesq_pkg = pytest.importorskip("pesq")
pystoi = pytest.importorskip("pystoi")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A speech-like clip and a noisy copy (SNR 20 dB), written as 16 kHz wav files."""
    clip = next(iter(synthetic_clips(n=1, seed=3))).audio_array
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(clip.size).astype(np.float32)
    noise *= np.sqrt(np.mean(clip**2) / np.mean(noise**2)) * 10 ** (-20 / 20)
    d = tmp_path_factory.mktemp("pair")
    sf.write(d / "ref.wav", clip, 16000, subtype="FLOAT")
    sf.write(d / "deg.wav", clip + noise, 16000, subtype="FLOAT")
    return d / "ref.wav", d / "deg.wav"


def _scores(names, audio, sr, ref, ref_sr):
    s = Sample("u", audio=audio, sr=sr, ref_audio=ref, ref_sr=ref_sr)
    return {m.name: m.compute(s) for m in get_metrics(names)}


def test_pesq_stoi_estoi_equal_the_reference_packages_on_the_same_files(pair):
    ref, sr = read_audio(pair[0])
    deg, _ = read_audio(pair[1])
    got = _scores("pesq,stoi,estoi", deg, sr, ref, sr)
    assert got["pesq"].detail["lag_ms"] == 0.0
    r64, d64 = ref.astype(np.float64), deg.astype(np.float64)
    # Equal up to float64 summation order (numpy's SIMD sums can differ in the last bit with array alignment).
    assert got["pesq"].value == pytest.approx(pesq_pkg.pesq(16000, r64, d64, "wb"), rel=1e-12)
    assert got["stoi"].value == pytest.approx(pystoi.stoi(r64, d64, 16000, extended=False), rel=1e-12)
    assert got["estoi"].value == pytest.approx(pystoi.stoi(r64, d64, 16000, extended=True), rel=1e-12)
    assert 1.0 < got["pesq"].value < 4.0 and 0.5 < got["stoi"].value < 1.0


def test_delay_and_extra_tail_are_aligned_away(pair):
    ref, sr = read_audio(pair[0])
    deg, _ = read_audio(pair[1])
    base = _scores("pesq,si_sdr", deg, sr, ref, sr)
    late = np.concatenate([np.zeros(int(0.123 * sr), np.float32), deg, np.zeros(4000, np.float32)])
    got = _scores("pesq,si_sdr", late, sr, ref, sr)
    assert got["pesq"].detail["lag_ms"] == pytest.approx(123.0)
    assert got["pesq"].detail["cut_ms"] == pytest.approx(250.0)
    assert got["pesq"].value == pytest.approx(base["pesq"].value, abs=1e-6)
    assert got["si_sdr"].value == pytest.approx(base["si_sdr"].value, abs=1e-6)


def test_missing_audio_at_the_end_is_penalised_not_hidden(pair):
    ref, sr = read_audio(pair[0])
    short = ref[: ref.size // 2]
    r, d, info = align_to_reference(ref, sr, short, sr)
    missing_ms = 1000 * (ref.size - ref.size // 2) / sr
    assert d.size == r.size
    # only the reference's inaudible ending may be cut; the audible rest that is missing becomes zeros
    assert info["pad_ms"] + info["ref_tail_cut_ms"] == pytest.approx(missing_ms)
    assert info["pad_ms"] > 0.8 * missing_ms
    assert _scores("stoi", short, sr, ref, sr)["stoi"].value < 0.8


def test_trimmed_quiet_lead_in_is_not_penalised_but_a_missing_audible_head_is(pair):
    from harness.audio import first_audible_sample

    speech, sr = read_audio(pair[0])
    rng = np.random.default_rng(2)
    lead_in = (10 ** (-50 / 20) * rng.standard_normal(int(0.3 * sr))).astype(
        np.float32
    )  # breath/room, -50 dBFS
    ref = np.concatenate([lead_in, speech])
    onset = first_audible_sample(ref, sr)
    trimmed = ref[onset:]  # what loopback returns
    got = _scores("pesq", trimmed, sr, ref, sr)["pesq"]
    assert got.detail["lag_ms"] == pytest.approx(-1000 * onset / sr)
    assert got.detail["ref_head_cut_ms"] == pytest.approx(1000 * onset / sr) and got.detail["pad_ms"] == 0
    assert got.value > 4.6
    late = ref[onset + int(0.25 * sr) :]  # loses 250 ms of audible speech too
    worse = _scores("pesq", late, sr, ref, sr)["pesq"]
    assert worse.detail["pad_ms"] == pytest.approx(250, abs=1) and worse.value < got.value - 0.3


def test_sample_rate_mismatch_is_resampled(pair):
    ref, sr = read_audio(pair[0])
    deg, _ = read_audio(pair[1])
    base = _scores("pesq,stoi", deg, sr, ref, sr)
    got = _scores("pesq,stoi", resample(deg, 16000, 22050), 22050, resample(ref, 16000, 48000), 48000)
    assert got["pesq"].detail["lag_ms"] == 0.0
    assert got["pesq"].value == pytest.approx(base["pesq"].value, abs=0.1)
    assert got["stoi"].value == pytest.approx(base["stoi"].value, abs=0.02)


def test_functional_errors_name_the_argument():
    x = np.zeros(16000)
    with pytest.raises(ValueError, match=r"Expected argument `fs` to be 16000 but got 22050"):
        pesq_wb(x, x, 22050)
    with pytest.raises(ValueError, match="same length"):
        stoi(x, x[:100], 16000)
    with pytest.raises(ValueError, match="all zeros"):
        si_sdr(x, x + 1)


def test_si_sdr_and_log_mel_distance_behave():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(16000)
    noise = rng.standard_normal(16000)
    noise *= np.linalg.norm(ref) / np.linalg.norm(noise) / 10.0  # 20 dB
    assert si_sdr(ref, ref + noise) == pytest.approx(20.0, abs=0.3)
    assert si_sdr(ref, 0.3 * (ref + noise)) == pytest.approx(si_sdr(ref, ref + noise))  # scale-invariant
    assert log_mel_distance(ref, ref, 16000) == 0.0
    assert log_mel_distance(ref, ref + noise, 16000) < log_mel_distance(ref, ref + 10 * noise, 16000)


def test_missing_package_gives_na_with_install_hint(monkeypatch, pair):
    ref, sr = read_audio(pair[0])
    monkeypatch.setitem(sys.modules, "pesq", None)  # import pesq -> ModuleNotFoundError
    r = _scores("pesq", ref, sr, ref, sr)["pesq"]
    assert r.value is None and "pip install 's2s-bench[metrics]'" in r.reason


def test_reference_metric_without_reference_is_na():
    r = _scores("stoi", np.ones(16000, np.float32), 16000, None, None)["stoi"]
    assert r.value is None and "no reference audio" in r.reason


def test_functional_api_matches_the_registered_metrics(pair):
    from harness.metrics import functional as F

    ref, sr = read_audio(pair[0])
    deg, _ = read_audio(pair[1])
    got = _scores("estoi,si_sdr", deg, sr, ref, sr)
    r, d, _ = F.align_to_reference(ref, sr, deg, sr)
    assert F.estoi(r, d, 16000) == pytest.approx(got["estoi"].value, rel=1e-12)
    assert F.si_sdr(r, d) == pytest.approx(got["si_sdr"].value, rel=1e-12)
    assert F.wer("తెలుగు భాష", "తెలుగు") == 0.5


def test_score_audio_command_scores_folders_and_reports_bad_files(pair, tmp_path, capsys):
    import json
    import shutil

    from harness.cli import main

    (tmp_path / "ref").mkdir()
    (tmp_path / "hyp").mkdir()
    shutil.copy(pair[0], tmp_path / "ref" / "a.wav")
    shutil.copy(pair[1], tmp_path / "hyp" / "a.wav")
    (tmp_path / "hyp" / "b.wav").write_bytes(b"RIFF broken")
    out = tmp_path / "per-file.jsonl"
    args = [
        "score",
        "audio",
        "--ref",
        str(tmp_path / "ref"),
        "--hyp",
        str(tmp_path / "hyp"),
        "--metrics",
        "pesq,stoi",
        "--workers",
        "1",
        "--json",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    corpus = json.loads(capsys.readouterr().out)["corpus"]
    ref, _ = read_audio(pair[0])
    deg, _ = read_audio(pair[1])
    assert corpus["pesq"]["value"] == pytest.approx(
        pesq_pkg.pesq(16000, ref.astype(float), deg.astype(float), "wb")
    )
    assert corpus["pesq"]["n"] == 1 and corpus["pesq"]["n_na"] == 1
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    broken = [x for x in lines if x["file"] == "b"]
    assert len(broken) == 2 and all(x["value"] is None and "hyp/b.wav: " in x["reason"] for x in broken)


def test_si_sdr_pesq_stoi_agree_with_torchmetrics_functional(pair):
    """A second, independent implementation: torchmetrics' functional audio metrics on the same pair."""
    tm = pytest.importorskip("torchmetrics.functional.audio", reason="torchmetrics is in the dev extra")
    import torch

    ref, sr = read_audio(pair[0])
    deg, _ = read_audio(pair[1])
    r, d = torch.from_numpy(ref.astype(np.float64)), torch.from_numpy(deg.astype(np.float64))
    assert si_sdr(ref, deg) == pytest.approx(
        float(tm.scale_invariant_signal_distortion_ratio(d, r)), abs=1e-3
    )
    assert pesq_wb(ref, deg, sr) == pytest.approx(
        float(tm.perceptual_evaluation_speech_quality(d, r, sr, "wb")), abs=1e-4
    )
    for extended in (False, True):
        theirs = float(tm.short_time_objective_intelligibility(d, r, sr, extended=extended))
        assert stoi(ref, deg, sr, extended=extended) == pytest.approx(theirs, abs=1e-4)
