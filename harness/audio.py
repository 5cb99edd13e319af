"""Audio reading, resampling and the audibility rule used by TTFA."""

from __future__ import annotations

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
    x = np.asarray(x, dtype=np.float32)
    return x.mean(axis=1, dtype=np.float32) if x.ndim == 2 else x


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a sound file as float32 mono; raise :class:`AudioError` naming the file on any failure."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError with terse text
        raise AudioError(path, f"cannot decode audio ({exc})") from None
    return to_mono(data), int(sr)


def write_audio(path: str | Path, x: np.ndarray, sr: int) -> None:
    import soundfile as sf

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(x, dtype=np.float32), sr, subtype="FLOAT")


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
