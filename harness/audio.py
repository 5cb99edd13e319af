"""Audio reading, resampling and the audibility rule used by TTFA."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

AUDIBLE_DBFS = -40.0
"""A sample is audible when the RMS over the 10 ms window starting at it reaches this level (dB re full scale 1.0)."""
AUDIBLE_WINDOW_S = 0.010


class AudioError(Exception):
    """An audio file cannot be used; ``str()`` names the file and the problem."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = str(path) if path is not None else "<memory>"
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """High-quality resampling (soxr); float32 mono in and out."""
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float32)
    import soxr

    return soxr.resample(np.asarray(x, dtype=np.float32), sr_in, sr_out, quality="HQ").astype(np.float32)


def to_mono(x: np.ndarray) -> np.ndarray:
    """Average the channels of a ``(frames, channels)`` array; 1-D input is returned as float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        return x[:, 0].copy() if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)
    return x


COMPRESSED_SUFFIXES = {".mp3", ".m4a", ".mp4", ".aac", ".opus", ".webm", ".wma"}


def _describe_non_audio(path: Path) -> str | None:
    """A reason when the file is plainly not audio (text, HTML, a truncated RIFF header), else None."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head.startswith(b"RIFF") and len(head) < 44:
        return f"truncated WAV header ({path.stat().st_size} bytes)"
    if head[:4] in (b"RIFF", b"fLaC", b"OggS", b"ID3\x03", b"ID3\x04") or head[4:8] == b"ftyp":
        return None
    try:
        sample = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if sample and all(ch.isprintable() or ch in "\r\n\t" for ch in sample):
        return f"not an audio file: it holds text ({sample[:24]!r}...)"
    return None


def decode_with_av(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode any container/codec FFmpeg knows (mp3, m4a/AAC, opus, ...) through PyAV; float32 (frames, channels)."""
    try:
        import av
    except ModuleNotFoundError:
        raise AudioError(
            path, "decoding this format needs PyAV: pip install 's2s-bench[data]' (or pip install av)"
        ) from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(path, "no audio stream in the file")
            stream = container.streams.audio[0]
            chunks = []
            sr = stream.codec_context.sample_rate or stream.rate
            for frame in container.decode(stream):
                arr = frame.to_ndarray()
                if frame.format.is_planar:
                    arr = arr.T  # (channels, n) -> (n, channels)
                else:
                    arr = arr.reshape(-1, len(frame.layout.channels))
                if arr.dtype.kind == "i":
                    arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max + 1)
                chunks.append(arr.astype(np.float32))
                sr = frame.sample_rate or sr
    except AudioError:
        raise
    except Exception as exc:  # av.error.* and friends
        raise AudioError(path, f"cannot decode audio ({type(exc).__name__}: {exc})") from None
    if not chunks:
        return np.zeros((0, 1), dtype=np.float32), int(sr or 0)
    return np.concatenate(chunks, axis=0), int(sr)


def read_audio_channels(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a sound file as float32 ``(frames, channels)`` with its own sample rate.

    WAV/FLAC/OGG go through soundfile; mp3/m4a and anything soundfile cannot read go through PyAV (the ``data``
    extra). Raises :class:`AudioError` naming the file and the problem.
    """
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    not_audio = _describe_non_audio(path)
    if not_audio:
        raise AudioError(path, not_audio)
    if path.suffix.lower() in COMPRESSED_SUFFIXES:
        return decode_with_av(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError with terse text
        try:
            return decode_with_av(path)
        except AudioError:
            raise AudioError(path, f"cannot decode audio ({exc})") from None
    return data, int(sr)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a sound file as float32 mono (channels averaged); raise :class:`AudioError` naming the file on failure."""
    data, sr = read_audio_channels(path)
    return to_mono(data), sr


def write_audio(path: str | Path, x: np.ndarray, sr: int) -> None:
    """Float32 WAV, written to ``PATH.partial`` and renamed: a failed write (a full disk) leaves no file behind."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        sf.write(str(partial), np.asarray(x, dtype=np.float32), sr, subtype="FLOAT", format="WAV")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def first_audible_sample(
    x: np.ndarray, sr: int, dbfs: float = AUDIBLE_DBFS, window_s: float = AUDIBLE_WINDOW_S
) -> int | None:
    """Index of the first audible sample, or ``None`` if the signal never becomes audible.

    The first 10 ms window (sliding by one sample) whose RMS reaches ``dbfs`` is found; inside it, the first sample
    whose magnitude reaches the same level is the onset. Signals shorter than one window are judged as a whole.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return None
    level = 10.0 ** (dbfs / 20.0)
    win = max(1, min(int(round(window_s * sr)), x.size))
    csum = np.concatenate(([0.0], np.cumsum(x * x)))
    mean_sq = (csum[win:] - csum[:-win]) / win
    hits = np.flatnonzero(mean_sq >= level * level)
    if hits.size == 0:
        return None
    start = int(hits[0])
    loud = np.flatnonzero(np.abs(x[start : start + win]) >= level)
    return start + int(loud[0]) if loud.size else start


MIN_DURATION_S = 0.1
MAX_DURATION_S = 120.0
CLIP_LEVEL = 0.999
"""A sample at or above this magnitude (full scale 1.0) counts as clipped."""
HEAVY_CLIPPING_FRACTION = 0.01
"""Audio with at least this fraction of clipped samples is unusable; a smaller but non-trivial fraction warns."""
SILENCE_PEAK = 10.0 ** (-80.0 / 20.0)
"""A signal whose peak stays below -80 dBFS counts as digital silence."""


def audio_problems(
    x: np.ndarray, sr: int, min_s: float = MIN_DURATION_S, max_s: float = MAX_DURATION_S
) -> list[tuple[str, str]]:
    """Problems of decoded mono audio as ``(severity, reason)``; severity ``"error"`` (unusable) or ``"warning"``.

    Errors: no samples, NaN/inf samples, shorter than ``min_s`` or longer than ``max_s`` seconds, digital silence
    (peak below -80 dBFS), heavy clipping (>= 1 % of samples at full scale). Warning: some clipping (>= 0.1 %).
    """
    x = np.asarray(x)
    if x.size == 0:
        return [("error", "no samples (empty audio)")]
    out: list[tuple[str, str]] = []
    finite = np.isfinite(x)
    if not finite.all():
        out.append(("error", f"{int(x.size - finite.sum())} NaN/inf samples"))
        x = np.where(finite, x, 0.0)
    dur = x.size / sr
    if dur < min_s:
        out.append(("error", f"too short: {dur:.3f} s (minimum {min_s} s)"))
    elif dur > max_s:
        out.append(("error", f"too long: {dur:.1f} s (maximum {max_s} s)"))
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak < SILENCE_PEAK:
        what = "all samples are zero" if peak == 0.0 else f"peak {20 * np.log10(peak):.0f} dBFS"
        out.append(("error", f"digital silence ({what})"))
    else:
        clipped = float(np.mean(np.abs(x) >= CLIP_LEVEL))
        if clipped >= HEAVY_CLIPPING_FRACTION:
            out.append(("error", f"heavy clipping: {100 * clipped:.1f}% of samples at full scale"))
        elif clipped >= HEAVY_CLIPPING_FRACTION / 10:
            out.append(("warning", f"some clipping: {100 * clipped:.2f}% of samples at full scale"))
    return out
