"""Audio validation: planted bad files are each named with the right reason, and a run never crashes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from harness.audio import AudioError, read_audio
from harness.cli import main
from harness.data import Utterance, read_manifest, validate_audio
from harness.datasets.check import check_target


def write_compressed(path, x, sr, fmt, codec):
    """Encode mono float audio with PyAV (mp3 via libmp3lame, m4a via AAC in an MP4/iPod container)."""
    av = pytest.importorskip("av", reason="mp3/m4a decoding needs PyAV (the 'data' extra)")
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=sr)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.asarray(x, np.float32)[None, :], format="flt", layout="mono")
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _tone(seconds: float, sr: int = 16000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.fixture
def planted(tmp_path):
    d = tmp_path / "planted"
    d.mkdir()
    (d / "zero_bytes.wav").write_bytes(b"")
    sf.write(d / "good.wav", _tone(1.0), 16000, subtype="PCM_16")
    (d / "truncated_header.wav").write_bytes((d / "good.wav").read_bytes()[:20])
    nan = _tone(1.0)
    nan[100:200] = np.nan
    sf.write(d / "float_nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(d / "stereo_44k.wav", _tone(1.0, 44100, channels=2), 44100, subtype="PCM_16")
    (d / "text_named.wav").write_text("this is not audio, just some notes\n", encoding="utf-8")
    sf.write(d / "tiny_0.05s.wav", _tone(0.05), 16000, subtype="PCM_16")
    sf.write(d / "silence.wav", np.zeros(16000, dtype=np.float32), 16000, subtype="PCM_16")
    clipped = np.clip(_tone(1.0) * 10, -1, 1)
    sf.write(d / "clipped.wav", clipped, 16000, subtype="FLOAT")
    return d


def _reasons(findings):
    out: dict[str, list[tuple[str, str]]] = {}
    for f in findings:
        out.setdefault(f.path.rsplit("/", 1)[-1], []).append((f.severity, f.reason))
    return out


def test_each_planted_file_is_named_with_its_reason(planted):
    findings, n = check_target(planted)
    assert n == 9
    r = _reasons(findings)
    assert "good.wav" not in r

    def has(name, severity, words):
        assert any(sev == severity and words in reason for sev, reason in r[name]), (name, r.get(name))

    has("zero_bytes.wav", "error", "empty file (0 bytes)")
    has("truncated_header.wav", "error", "truncated WAV header")
    has("float_nan.wav", "error", "NaN/inf")
    has("stereo_44k.wav", "warning", "2 channels")
    has("stereo_44k.wav", "warning", "44100 Hz")
    has("text_named.wav", "error", "not an audio file")
    has("tiny_0.05s.wav", "error", "too short: 0.050 s")
    has("silence.wav", "error", "digital silence")
    has("clipped.wav", "error", "heavy clipping")


def test_check_command_prints_a_row_per_bad_file_and_exits_nonzero(planted, capsys):
    rc = main(["data", "check", str(planted)])
    out = capsys.readouterr().out
    assert rc == 1
    for name in (
        "zero_bytes.wav",
        "truncated_header.wav",
        "float_nan.wav",
        "text_named.wav",
        "tiny_0.05s.wav",
    ):
        line = next(ln for ln in out.splitlines() if name in ln)
        assert line.startswith("ERROR")
    assert next(ln for ln in out.splitlines() if "stereo_44k.wav" in ln).startswith("warn")
    assert "9 files checked: 1 ok, 1 with warnings, 7 unusable" in out


def test_check_command_exits_zero_on_a_clean_folder(tmp_path, capsys):
    sf.write(tmp_path / "a.wav", _tone(0.5), 16000)
    assert main(["data", "check", str(tmp_path)]) == 0
    assert "1 files checked: 1 ok" in capsys.readouterr().out


def _manifest(tmp_path, **overrides):
    sf.write(tmp_path / "a.wav", _tone(1.0), 16000, subtype="PCM_16")
    import hashlib

    rec = {
        "id": "a",
        "audio": "a.wav",
        "sample_rate": 16000,
        "duration": 1.0,
        "text": "x",
        "sha256": hashlib.sha256((tmp_path / "a.wav").read_bytes()).hexdigest(),
    }
    rec.update(overrides)
    (tmp_path / "manifest.jsonl").write_text(json.dumps(rec) + "\n", encoding="utf-8")
    return tmp_path / "manifest.jsonl"


def test_manifest_checks_sample_rate_and_checksum(tmp_path):
    m = _manifest(tmp_path)
    assert check_target(m)[0] == []
    _manifest(tmp_path, sample_rate=22050, sha256="0" * 64)
    r = _reasons(check_target(m)[0])["a.wav"]
    assert ("error", "sample rate 16000 Hz but the manifest declares 22050 Hz") in r
    assert any("sha256 mismatch" in reason for _, reason in r)


def test_loading_checks_sha256_and_declared_rate(tmp_path):
    m = _manifest(tmp_path, sha256="f" * 64)
    (u,) = read_manifest(m)
    with pytest.raises(AudioError, match="sha256 mismatch") as exc:
        u.load_audio(16000)
    assert exc.value.path.endswith("a.wav")
    u.sha256 = None
    u.sample_rate = 8000
    with pytest.raises(AudioError, match="declares 8000 Hz"):
        u.load_audio(16000)


def test_load_mixes_stereo_down_and_resamples(tmp_path):
    sf.write(tmp_path / "s.wav", _tone(1.0, 44100, channels=2), 44100)
    x = Utterance(id="s", audio_path=str(tmp_path / "s.wav")).load_audio(16000)
    assert x.ndim == 1 and abs(x.size - 16000) <= 1


def test_validate_audio_names_the_problem():
    with pytest.raises(AudioError, match="digital silence"):
        validate_audio(np.zeros(16000, np.float32), 16000, "mem")
    with pytest.raises(AudioError, match="too long"):
        validate_audio(_tone(2.0), 16000, "mem", max_s=1.0)
    validate_audio(_tone(1.0), 16000, "mem")


def test_a_bad_manifest_line_gives_a_clean_error(tmp_path, capsys):
    (tmp_path / "manifest.jsonl").write_text("{not json\n", encoding="utf-8")
    assert main(["data", "check", str(tmp_path)]) == 1  # an unusable line is a finding, named with its line
    assert "manifest.jsonl:1" in (out := capsys.readouterr().out) and "not valid JSON" in out


@pytest.mark.parametrize("ext,fmt,codec", [("mp3", "mp3", "libmp3lame"), ("m4a", "ipod", "aac")])
def test_compressed_audio_decodes_through_pyav(tmp_path, ext, fmt, codec):
    path = tmp_path / f"tone.{ext}"
    write_compressed(path, _tone(1.0, 16000), 16000, fmt, codec)
    x, sr = read_audio(path)
    assert sr == 16000 and abs(x.size / sr - 1.0) < 0.1 and np.abs(x).max() > 0.1
