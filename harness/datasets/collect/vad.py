"""Voice activity segmentation with silero-vad (its packaged ONNX "sequence" model; nothing is downloaded).

A thin use of silero-vad: its model gives one speech probability per 32 ms frame (512 samples at 16 kHz) and its own
``get_speech_timestamps_from_probs`` turns them into speech regions (hysteresis ``threshold`` / ``neg_threshold``,
``min_silence_s`` of silence to end a region, ``pad_s`` added each side). What is ours: regions longer than
``max_segment_s`` are split at their longest pause (the longest run of frames below ``neg_threshold``), so a clip is
never cut mid-word unless a region has no pause at all (then it is cut at its least speech-like frame and the cut is
marked ``forced``).

silero is imported through :func:`harness.vad.silero_module`, the one import route of the harness (it puts back the
torch thread count that importing silero-vad sets to 1 for the whole process).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SAMPLE_RATE = 16000
FRAME = 512
"""Samples per silero-vad frame at 16 kHz (32 ms)."""

_model = None


@dataclass(frozen=True)
class VadConfig:
    """Segmentation settings; times in seconds. Recorded with every segment manifest."""

    threshold: float = 0.5
    neg_threshold: float = 0.35
    min_speech_s: float = 0.25
    min_silence_s: float = 0.1
    pad_s: float = 0.03
    max_segment_s: float = 30.0
    min_cut_pause_s: float = 0.064
    refine_back_s: float = 0.3
    refine_ahead_s: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


def load_model():
    """silero-vad's sequence ONNX model (once per process)."""
    global _model
    if _model is None:
        from harness.vad import silero_module

        try:
            silero = silero_module()
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                "voice activity segmentation needs silero-vad: pip install 's2s-bench[collect]'"
            ) from None
        _model = silero.load_silero_vad(sequence=True)
    return _model


def speech_probs(x: np.ndarray) -> np.ndarray:
    """One speech probability (0..1) per 32 ms frame of 16 kHz mono ``x``."""
    return np.asarray(load_model().audio_forward(np.ascontiguousarray(x, dtype=np.float32)), dtype=np.float32)


def speech_regions(probs: np.ndarray, n_samples: int, cfg: VadConfig) -> list[tuple[int, int]]:
    """Speech regions ``(start, end)`` in samples by silero-vad's own state machine (no length limit)."""
    from harness.vad import silero_module

    out = silero_module().get_speech_timestamps_from_probs(
        [float(p) for p in probs],
        sampling_rate=SAMPLE_RATE,
        threshold=cfg.threshold,
        neg_threshold=cfg.neg_threshold,
        min_speech_duration_ms=int(cfg.min_speech_s * 1000),
        min_silence_duration_ms=int(cfg.min_silence_s * 1000),
        speech_pad_ms=int(cfg.pad_s * 1000),
        audio_length_samples=n_samples,
    )
    return [(int(r["start"]), int(r["end"])) for r in out]


def _pauses(probs: np.ndarray, lo: int, hi: int, neg_threshold: float) -> list[tuple[int, int]]:
    """Runs ``(first_frame, end_frame)`` of frames below ``neg_threshold`` inside frames ``[lo, hi)``."""
    quiet = probs[lo:hi] < neg_threshold
    runs, start = [], None
    for k, q in enumerate(quiet):
        if q and start is None:
            start = k
        elif not q and start is not None:
            runs.append((lo + start, lo + k))
            start = None
    if start is not None:
        runs.append((lo + start, hi))
    return runs


def split_long(region: tuple[int, int], probs: np.ndarray, cfg: VadConfig) -> list[tuple[int, int, str]]:
    """Split a region into pieces of at most ``max_segment_s``, each cut in the longest pause that keeps the first
    piece within the limit; ``(start, end, cut)`` where ``cut`` says how the piece's end was made ("vad", "pause" or
    "forced": no pause, cut at the least speech-like frame)."""
    max_len = int(cfg.max_segment_s * SAMPLE_RATE)
    min_piece = int(min(cfg.max_segment_s / 3, 2.0) * SAMPLE_RATE)
    start, end = region
    out: list[tuple[int, int, str]] = []
    while end - start > max_len:
        lo_f = (start + min_piece) // FRAME
        hi_f = min(len(probs), (start + max_len) // FRAME)
        runs = [r for r in _pauses(probs, lo_f, hi_f, cfg.neg_threshold) if r[1] - r[0] >= 1]
        min_run = max(1, int(round(cfg.min_cut_pause_s * SAMPLE_RATE / FRAME)))
        good = [r for r in runs if r[1] - r[0] >= min_run] or runs
        pad = int(cfg.pad_s * SAMPLE_RATE)
        if good:
            a, b = max(good, key=lambda r: (r[1] - r[0], r[0]))
            piece_end = min(a * FRAME + pad, start + max_len)
            next_start, how = max(b * FRAME - pad, piece_end), "pause"
        else:
            k = lo_f + int(np.argmin(probs[lo_f:hi_f])) if hi_f > lo_f else (start + max_len) // FRAME
            piece_end = next_start = k * FRAME
            how = "forced"
        out.append((start, piece_end, how))
        start = next_start
    out.append((start, end, "vad"))
    return out


ENERGY_FRAME = 160
"""Samples per 10 ms energy frame used to refine boundaries."""


def frame_energy_db(x: np.ndarray) -> np.ndarray:
    """Mean power of each 10 ms frame in dB re full scale."""
    n = x.size // ENERGY_FRAME
    frames = np.asarray(x[: n * ENERGY_FRAME], dtype=np.float64).reshape(n, ENERGY_FRAME)
    return 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)


def refine(pieces: list[tuple[int, int, str]], x: np.ndarray, cfg: VadConfig) -> list[tuple[int, int, str]]:
    """Move each boundary to the speech's own onset/offset by 10 ms frame energy.

    silero's probabilities fall 100-150 ms after the last voiced sample, so ends come late. Within
    ``refine_back_s`` before and ``refine_ahead_s`` after a VAD boundary, the start moves to the first, and the end
    to the last, frame whose energy is above the recording's noise floor (10th percentile of frame energies) by
    half the distance to its speech level (90th percentile), at most 10 dB. Without such a frame the boundary stays.
    """
    e = frame_energy_db(x)
    if e.size == 0:
        return pieces
    floor, speech = np.percentile(e, 10), np.percentile(e, 90)
    thr = floor + min(10.0, 0.5 * (speech - floor))
    back, ahead = int(cfg.refine_back_s * 100), int(cfg.refine_ahead_s * 100)
    out = []
    for start, end, how in pieces:
        s_f, e_f = start // ENERGY_FRAME, -(-end // ENERGY_FRAME)
        lo, hi = max(0, s_f - int(ahead)), min(e.size, s_f + back)
        loud = np.flatnonzero(e[lo:hi] >= thr)
        new_start = (lo + int(loud[0])) * ENERGY_FRAME if loud.size else start
        lo, hi = max(0, e_f - back), min(e.size, e_f + ahead)
        loud = np.flatnonzero(e[lo:hi] >= thr)
        new_end = (lo + int(loud[-1]) + 1) * ENERGY_FRAME if loud.size else end
        if how != "vad":  # a cut inside a region keeps its place
            new_end = end
        if new_end - new_start >= int(cfg.min_speech_s * SAMPLE_RATE):
            out.append((new_start, min(new_end, x.size), how))
        else:
            out.append((start, end, how))
    return out


def segment(x: np.ndarray, cfg: VadConfig) -> tuple[list[tuple[int, int, str]], np.ndarray]:
    """Speech segments ``(start, end, cut)`` in samples of 16 kHz mono ``x``, each at most ``cfg.max_segment_s``,
    and the frame probabilities they came from."""
    probs = speech_probs(x)
    pieces: list[tuple[int, int, str]] = []
    for region in speech_regions(probs, x.size, cfg):
        pieces += split_long(region, probs, cfg)
    return refine(pieces, x, cfg), probs


def process_vad(unit, params: dict, ctx) -> list[dict]:
    """The ``vad`` stage: speech segments of each recording, with the recording's provenance."""
    from .manifest import provenance
    from .media import load_recording

    cfg = VadConfig(**params)
    out = []
    for rec in unit["loudness"]:
        x = load_recording(ctx, rec)
        pieces, _ = segment(x, cfg)
        for k, (a, b, how) in enumerate(pieces):
            out.append({
                "id": f"{rec['id']}-s{k:04d}", **provenance(rec), "start_s": round(a / SAMPLE_RATE, 4),
                "end_s": round(b / SAMPLE_RATE, 4), "duration_s": round((b - a) / SAMPLE_RATE, 4), "cut": how,
            })  # fmt: skip
    return out
