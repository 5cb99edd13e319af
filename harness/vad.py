"""Voice activity detection: where in an input the user speaks, and so where their speech ends.

TTFA is measured from the end of the user's *speech*, not of the file (real corpora end in 0.3-2 s of silence), so
every input's speech segments are found once, before anything is timed, and cached by the audio's checksum.

Two methods with one API (:func:`detect_speech`), both at 16 kHz:

- ``silero``: silero-vad's ``get_speech_timestamps`` with the ONNX model that ships inside the ``silero-vad`` wheel
  (no download; run through onnxruntime, one thread) and silero's default settings: threshold 0.5, speech of at
  least 250 ms, silences of at least 100 ms split segments, segments padded by 30 ms each side. These are the
  settings Full-Duplex-Bench's ``get_timing.py`` uses to find the end of user speech.
- ``energy``: the fallback when silero-vad is not installed. 10 ms frames; a frame is voiced when its RMS is within
  ``ENERGY_RANGE_DB`` of the loudest frame and above ``ENERGY_FLOOR_DBFS``; then the same shaping as silero's
  (gaps under 100 ms merged, segments under 250 ms dropped, 30 ms padding), so the two are interchangeable.

``method="auto"`` (the default) takes silero when it is installed (``pip install 's2s-bench[vad]'``), else energy.
:func:`vad_info` is what run.json records: the method, its version and every parameter.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

VAD_SAMPLE_RATE = 16000
METHODS = ("auto", "silero", "energy")

THRESHOLD = 0.5
MIN_SPEECH_MS = 250
MIN_SILENCE_MS = 100
SPEECH_PAD_MS = 30
ENERGY_FRAME_MS = 10.0
ENERGY_RANGE_DB = 35.0
"""energy: a frame is voiced when its RMS is at most this many dB below the loudest 10 ms frame ..."""
ENERGY_FLOOR_DBFS = -50.0
"""... and at least this loud (dB re full scale 1.0)."""

_SILERO_MODEL = None


@dataclass(frozen=True)
class SpeechActivity:
    """Speech segments of one input, in seconds from its start (sorted, non-overlapping)."""

    segments_s: tuple[tuple[float, float], ...]
    duration_s: float

    @property
    def found(self) -> bool:
        return bool(self.segments_s)

    @property
    def speech_end_s(self) -> float | None:
        """End of the last speech segment (its padding included), or None when no speech was found."""
        return self.segments_s[-1][1] if self.segments_s else None

    @property
    def trailing_silence_s(self) -> float | None:
        end = self.speech_end_s
        return None if end is None else max(0.0, self.duration_s - end)


def silero_available() -> bool:
    """Whether silero-vad and onnxruntime are installed (found without importing them: see :func:`_silero`)."""
    from importlib.util import find_spec

    return find_spec("silero_vad") is not None and find_spec("onnxruntime") is not None


def _silero():
    """The ``silero_vad`` module. Its import sets torch's thread count to 1 for the whole process, which would
    make every backend measured after it run on one core: the count is put back."""
    import torch

    threads = torch.get_num_threads()
    import silero_vad

    torch.set_num_threads(threads)
    return silero_vad


def resolve_method(method: str = "auto") -> str:
    """``silero`` or ``energy`` for ``method``; a clear error when silero is asked for and not installed."""
    if method not in METHODS:
        raise ValueError(f"Expected argument `vad` to be one of {', '.join(METHODS)} but got {method!r}")
    if method == "auto":
        return "silero" if silero_available() else "energy"
    if method == "silero" and not silero_available():
        raise ModuleNotFoundError(
            "VAD method 'silero' needs silero-vad and onnxruntime: pip install 's2s-bench[vad]' "
            "(or choose --vad energy)"
        )
    return method


def vad_info(method: str = "auto") -> dict[str, Any]:
    """What run.json records about the VAD: method, version, model and every parameter."""
    method = resolve_method(method)
    params: dict[str, Any] = {
        "sample_rate": VAD_SAMPLE_RATE,
        "min_speech_duration_ms": MIN_SPEECH_MS,
        "min_silence_duration_ms": MIN_SILENCE_MS,
        "speech_pad_ms": SPEECH_PAD_MS,
    }
    if method == "silero":
        from importlib import metadata

        return {
            "method": "silero",
            "version": metadata.version("silero-vad"),
            "model": "silero_vad.onnx (bundled in the silero-vad wheel, onnxruntime, 1 thread)",
            "params": {"threshold": THRESHOLD, **params},
        }
    return {
        "method": "energy",
        "version": "1",
        "model": None,
        "params": {
            "frame_ms": ENERGY_FRAME_MS,
            "range_db": ENERGY_RANGE_DB,
            "floor_dbfs": ENERGY_FLOOR_DBFS,
            **params,
        },
    }


def detect_speech(audio: np.ndarray, sr: int, method: str = "auto") -> SpeechActivity:
    """Speech segments of float mono ``audio`` at ``sr`` Hz (resampled to 16 kHz first)."""
    from .audio import resample

    method = resolve_method(method)
    x = resample(np.asarray(audio, dtype=np.float32), int(sr), VAD_SAMPLE_RATE)
    duration_s = x.size / VAD_SAMPLE_RATE
    if x.size == 0:
        return SpeechActivity((), 0.0)
    segments = _silero_segments(x) if method == "silero" else _energy_segments(x)
    clipped = tuple(
        (max(0.0, s / VAD_SAMPLE_RATE), min(duration_s, e / VAD_SAMPLE_RATE)) for s, e in segments if e > s
    )
    return SpeechActivity(clipped, duration_s)


def _silero_model():
    global _SILERO_MODEL
    if _SILERO_MODEL is None:
        import warnings

        with warnings.catch_warnings():  # silero's own use of a deprecated importlib.resources API
            warnings.simplefilter("ignore", DeprecationWarning)
            _SILERO_MODEL = _silero().load_silero_vad(onnx=True)
    return _SILERO_MODEL


def _silero_segments(x: np.ndarray) -> list[tuple[int, int]]:
    import torch

    stamps = _silero().get_speech_timestamps(
        torch.from_numpy(x),
        _silero_model(),
        threshold=THRESHOLD,
        sampling_rate=VAD_SAMPLE_RATE,
        min_speech_duration_ms=MIN_SPEECH_MS,
        min_silence_duration_ms=MIN_SILENCE_MS,
        speech_pad_ms=SPEECH_PAD_MS,
    )
    return [(int(s["start"]), int(s["end"])) for s in stamps]


def _energy_segments(x: np.ndarray) -> list[tuple[int, int]]:
    frame = int(round(ENERGY_FRAME_MS * VAD_SAMPLE_RATE / 1000))
    n_frames = -(-x.size // frame)
    padded = np.zeros(n_frames * frame, dtype=np.float64)
    padded[: x.size] = x
    rms = np.sqrt(np.mean(padded.reshape(n_frames, frame) ** 2, axis=1))
    db = 20 * np.log10(np.maximum(rms, 1e-10))
    voiced = db >= max(ENERGY_FLOOR_DBFS, float(db.max()) - ENERGY_RANGE_DB)
    raw: list[list[int]] = []
    for i in np.flatnonzero(voiced):
        start, end = int(i) * frame, min(x.size, (int(i) + 1) * frame)
        if raw and start - raw[-1][1] < MIN_SILENCE_MS * VAD_SAMPLE_RATE / 1000:
            raw[-1][1] = end
        else:
            raw.append([start, end])
    pad = SPEECH_PAD_MS * VAD_SAMPLE_RATE // 1000
    keep = [(s, e) for s, e in raw if e - s >= MIN_SPEECH_MS * VAD_SAMPLE_RATE / 1000]
    return [(max(0, s - pad), min(x.size, e + pad)) for s, e in keep]


# ---------------------------------------------------------------- per input, cached


def default_cache_dir() -> Path:
    """``$S2S_BENCH_CACHE/vad`` if set, else ``~/.cache/s2s-bench/vad``."""
    root = os.environ.get("S2S_BENCH_CACHE") or "~/.cache/s2s-bench"
    return Path(root).expanduser() / "vad"


def _cache_key(x16: np.ndarray, info: dict[str, Any]) -> str:
    h = hashlib.sha256(np.ascontiguousarray(x16, dtype="<f4").tobytes())
    h.update(json.dumps(info, sort_keys=True).encode())
    return h.hexdigest()


def cached_speech(
    audio: np.ndarray, sr: int, method: str = "auto", cache_dir: str | Path | None = None
) -> SpeechActivity:
    """:func:`detect_speech`, cached on disk by the checksum of the 16 kHz samples and the VAD's identity."""
    from .audio import resample

    info = vad_info(method)
    x16 = resample(np.asarray(audio, dtype=np.float32), int(sr), VAD_SAMPLE_RATE)
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    path = folder / f"{_cache_key(x16, info)}.json"
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        return SpeechActivity(tuple(tuple(s) for s in rec["segments_s"]), float(rec["duration_s"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = detect_speech(x16, VAD_SAMPLE_RATE, info["method"])
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"segments_s": found.segments_s, "duration_s": found.duration_s}))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the VAD again next time
    return found


def speech_of_utterances(
    utterances: Iterable[Any], method: str = "auto", cache_dir: str | Path | None = None
) -> dict[str, SpeechActivity | None]:
    """Speech of every utterance (anything with ``id`` and ``load_audio(sr)``) by id; None where it cannot be read
    (the runner then fails that utterance with the reader's reason)."""
    from .audio import AudioError

    out: dict[str, SpeechActivity | None] = {}
    for utt in utterances:
        try:
            audio = utt.load_audio(VAD_SAMPLE_RATE)
        except (AudioError, OSError, ValueError):
            out[utt.id] = None
            continue
        out[utt.id] = cached_speech(audio, VAD_SAMPLE_RATE, method, cache_dir)
    return out
