"""When the system is heard: its audible stretches, and the player that plays them (with barge-in flushes).

Turn-taking metrics need the system's output on the user's clock: *when* the user hears it speak and stop. Two
steps, both pure functions of what the event log and the output WAV hold:

- :func:`output_activity`: where the output is audible, in output samples: 10 ms frames on a fixed grid whose RMS
  reaches the audibility level of TTFA (``harness.audio.AUDIBLE_DBFS``, -40 dBFS), runs of them joined across
  gaps shorter than ``ACTIVITY_JOIN_MS``. The runner writes these segments into the log (``out_activity``) and
  ``s2s-bench rescore --check`` re-derives them from the WAV. Audible sound, not speech: a random-weight backend's
  noise counts as output, as it does for TTFA (Full-Duplex-Bench finds words with an ASR model instead).
- :func:`play`: the player of harness.latency (each chunk starts when it has arrived and the one before has
  played; an underrun moves the playhead), plus one rule: a ``barge_in`` mark stops playback at once: audio
  received but not yet played when it arrives is never heard (a client that stops its speaker when the system
  yields). Without such marks it is exactly harness.latency's player. On the user's clock, stretches less than
  ``ACTIVITY_JOIN_MS`` apart are joined again (the player's underruns split what was one segment).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..audio import AUDIBLE_DBFS

ACTIVITY_FRAME_MS = 10.0
ACTIVITY_JOIN_MS = 100.0
"""Audible frames separated by less than this are one segment (silero's ``min_silence_duration_ms`` default)."""
FLUSH_MARK = "barge_in"
"""The mark after which audio already received but not yet played is dropped by the player."""


def output_activity(x: np.ndarray, sr: int) -> list[tuple[int, int]]:
    """``[start, end)`` sample ranges of float mono ``x`` (at ``sr`` Hz) where it is audible (module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    frame = max(1, int(round(ACTIVITY_FRAME_MS * sr / 1000)))
    n_frames = -(-x.size // frame)
    if n_frames == 0:
        return []
    padded = np.zeros(n_frames * frame)
    padded[: x.size] = x
    mean_sq = np.mean(padded.reshape(n_frames, frame) ** 2, axis=1)
    active = mean_sq >= (10.0 ** (AUDIBLE_DBFS / 20.0)) ** 2
    join = ACTIVITY_JOIN_MS * sr / 1000
    out: list[list[int]] = []
    for i in np.flatnonzero(active):
        start, end = int(i) * frame, min(x.size, (int(i) + 1) * frame)
        if out and start - out[-1][1] < join:
            out[-1][1] = end
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


@dataclass
class Played:
    """Output samples ``[first, first + n)`` heard from ``start_ns`` on, one sample every ``1 / sr`` s."""

    start_ns: float
    first: int
    n: int


def play(items: Iterable[tuple[str, int, int]], sample_rate: int) -> list[Played]:
    """The player over ``(kind, t_ns, n)`` items in log order: ``("out", t, n)`` a chunk of ``n`` samples received
    at ``t``, ``("flush", t, 0)`` a barge-in mark received at ``t`` (module docstring)."""
    ns_per_sample = 1e9 / sample_rate
    pieces: list[Played] = []
    clock: float | None = None
    index = 0
    for kind, t, n in items:
        if kind == "flush":
            if clock is not None and clock > t:
                kept = []
                for p in pieces:
                    if p.start_ns >= t:
                        continue
                    end = p.start_ns + p.n * ns_per_sample
                    if end > t:
                        p.n = int((t - p.start_ns) / ns_per_sample)
                    kept.append(p)
                pieces = kept
                clock = float(t)
            continue
        start = float(t) if clock is None else max(float(t), clock)
        pieces.append(Played(start, index, n))
        clock = start + n * ns_per_sample
        index += n
    return pieces


def heard_spans(
    segments: Sequence[tuple[int, int]], pieces: Sequence[Played], t0_ns: int, sample_rate: int
) -> list[tuple[float, float]]:
    """The audible ``segments`` (output samples) as heard: ``(start, end)`` seconds after ``t0_ns``, in time
    order; parts never played (dropped by a flush) are left out, and stretches less than ``ACTIVITY_JOIN_MS``
    apart on the user's clock (an underrun of the player inside a segment, say) are one."""
    ns_per_sample = 1e9 / sample_rate
    spans: list[tuple[float, float]] = []
    for p in pieces:
        lo, hi = p.first, p.first + p.n
        for a, b in segments:
            s, e = max(a, lo), min(b, hi)
            if e > s:
                start = p.start_ns + (s - p.first) * ns_per_sample
                end = p.start_ns + (e - p.first) * ns_per_sample
                spans.append(((start - t0_ns) / 1e9, (end - t0_ns) / 1e9))
    spans.sort()
    joined: list[tuple[float, float]] = []
    for s, e in spans:
        if joined and s - joined[-1][1] < ACTIVITY_JOIN_MS / 1000:
            joined[-1] = (joined[-1][0], max(joined[-1][1], e))
        else:
            joined.append((s, e))
    return joined


def clip(spans: Sequence[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float]]:
    """The parts of ``spans`` inside ``[lo, hi]``."""
    return [(max(s, lo), min(e, hi)) for s, e in spans if min(e, hi) > max(s, lo)]


def span_at(spans: Sequence[tuple[float, float]], t: float) -> tuple[float, float] | None:
    """The span that holds time ``t`` (start <= t < end), or None."""
    return next(((s, e) for s, e in spans if s <= t < e), None)
