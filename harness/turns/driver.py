"""The runner's loop for ``endpointing=system``: the microphone stays open and the system decides.

:class:`harness.runner._Job` opens the session (behind the endpointer adapter when the backend cannot endpoint
itself), writes ``utt_start`` and, at the end, the output; in between it hands over to :func:`drive_system`:

- The microphone (:class:`Microphone`) plays the input file at the speed of speech, then goes on: the file's own
  trailing silence, then digital silence (``tail=silence``) or a room-noise bed (``tail=noise``: pink noise at
  ``tail_noise_dbfs`` RMS, seeded per utterance). Chunk *i* is pushed when its last sample has been spoken, on the
  same schedule as the oracle path, and ``end_input()`` is never called.
- The session is polled between pushes; every chunk and mark is stamped on receipt by the runner's ``record``.
- Injected user speech (a scenario's interruption or backchannel) starts ``after_output_ms`` after the system's
  first audible sample is heard (the player of :mod:`.timeline`), at the next chunk boundary, mixed into what the
  microphone hears. ``inject`` events record where (stream seconds) and what; an injection that cannot happen
  (the session ended first, or nothing was ever heard) is recorded with the reason.
- Listening stops when the session is done; or when nothing is left to inject, what was received has been played
  and the system is quiet: the adapter says it is idle, or (a backend that endpoints itself) ``settle_s`` passed
  with no new output and no injected speech; or at the limit, ``timeout_s`` after the end of the file: without an audible answer the
  turn is ``no_answer`` (the system never took it), with one still going it is ``truncated`` (as a timeout).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..audio import first_audible_sample
from .endpointer import BARGE_IN_MARK
from .scenarios import Injection
from .timeline import play

if TYPE_CHECKING:
    from ..backend import OutputChunk, Session

now_ns = time.perf_counter_ns

TAILS = ("silence", "noise")
NOISE_BLOCK_S = 1.0


class Microphone:
    """What the user's microphone hears, sample by sample: the file, then the tail, plus injected speech."""

    def __init__(self, audio: np.ndarray, sample_rate: int, tail: str, noise_dbfs: float, seed: int) -> None:
        self.audio = np.asarray(audio, dtype=np.float32)
        self.sr = sample_rate
        self.tail = tail
        self.noise_rms = 10.0 ** (noise_dbfs / 20.0)
        self.seed = seed
        self.clips: list[tuple[int, np.ndarray]] = []
        self._noise: dict[int, np.ndarray] = {}

    def add(self, start: int, clip: np.ndarray) -> None:
        self.clips.append((start, np.asarray(clip, dtype=np.float32)))

    def read(self, start: int, n: int) -> np.ndarray:
        out = np.zeros(n, np.float32)
        file_part = self.audio[start : start + n]
        out[: file_part.size] = file_part
        if self.tail == "noise" and start + n > self.audio.size:
            first = max(start, self.audio.size)
            out[first - start :] += self._noise_range(first, start + n)
        for at, clip in self.clips:
            lo, hi = max(start, at), min(start + n, at + clip.size)
            if hi > lo:
                out[lo - start : hi - start] += clip[lo - at : hi - at]
        return out

    def _noise_range(self, lo: int, hi: int) -> np.ndarray:
        block = int(NOISE_BLOCK_S * self.sr)
        parts = []
        for b in range(lo // block, (hi - 1) // block + 1):
            x = self._noise_block(b)
            parts.append(x[max(lo, b * block) - b * block : min(hi, (b + 1) * block) - b * block])
        return np.concatenate(parts)

    def _noise_block(self, index: int) -> np.ndarray:
        """Pink noise (1/f power above 20 Hz), one block, the same for the same seed and index."""
        if index not in self._noise:
            block = int(NOISE_BLOCK_S * self.sr)
            rng = np.random.default_rng([self.seed, index])
            spectrum = rng.standard_normal(block // 2 + 1) + 1j * rng.standard_normal(block // 2 + 1)
            freqs = np.fft.rfftfreq(block, 1.0 / self.sr)
            spectrum /= np.sqrt(np.maximum(freqs, 20.0))
            spectrum[0] = 0
            x = np.fft.irfft(spectrum, block)
            x *= self.noise_rms / max(float(np.sqrt(np.mean(x**2))), 1e-12)
            self._noise[index] = x.astype(np.float32)
        return self._noise[index]


def settings_problem(settings) -> str | None:
    """What is wrong with a run's turn-taking settings (``RunSettings``: endpointing, tail, settle_s, endpointer),
    or None."""
    import math

    from ..vad import resolve_method

    s = settings
    if s.endpointing not in ("oracle", "system"):
        return f"Expected endpointing to be oracle or system but got {s.endpointing!r}"
    if s.endpointing == "oracle":
        return None
    if s.pacing != "realtime":
        return (
            "endpointing=system needs pacing=realtime: the system decides from the audio's timing, and in fast "
            "pacing there is none"
        )
    if s.tail not in TAILS:
        return f"Expected tail to be one of {', '.join(TAILS)} but got {s.tail!r}"
    if not (s.settle_s > 0 and math.isfinite(s.settle_s)):
        return f"Expected settle_s to be a finite number of seconds > 0 but got {s.settle_s}"
    if not math.isfinite(s.tail_noise_dbfs):
        return f"Expected tail_noise_dbfs to be a finite level in dBFS but got {s.tail_noise_dbfs}"
    try:
        s.endpointer.validate()
        resolve_method(s.endpointer.vad)
    except (ValueError, ModuleNotFoundError) as exc:
        return str(exc)
    return None


def noise_seed(run_seed: int, utt_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{run_seed}\x1f{utt_id}".encode()).digest()[:4], "little")


class Heard:
    """Follows the output as it arrives: when its first audible sample is heard and when playback ends (the
    player of :mod:`.timeline`, kept up to date chunk by chunk)."""

    def __init__(self, sample_rate: int) -> None:
        self.sr = sample_rate
        self.items: list[tuple[str, int, int]] = []
        self._audio: list[np.ndarray] = []  # the output from sample ``_first`` on, until it is first heard
        self._first = 0
        self.onset_ns: float | None = None
        self.last_chunk_ns: int | None = None
        self.played_end_ns = 0.0
        """When everything received so far has been played (or was dropped by a barge-in)."""

    def add(self, chunk: OutputChunk, t: int) -> None:
        if BARGE_IN_MARK in chunk.marks:
            self.items.append(("flush", t, 0))
            self.played_end_ns = min(self.played_end_ns, float(t))
            if self.onset_ns is not None and self.onset_ns > t:  # it was queued, and is now never heard
                self.onset_ns, self._audio = None, []
                self._first = sum(n for kind, _, n in self.items if kind == "out")
        if chunk.audio is None or not np.asarray(chunk.audio).size:
            return
        pcm = np.asarray(chunk.audio, dtype=np.float32)
        self.items.append(("out", t, pcm.size))
        self.last_chunk_ns = t
        self.played_end_ns = max(float(t), self.played_end_ns) + pcm.size * 1e9 / self.sr
        if self.onset_ns is None:
            self._audio.append(pcm)
            buf = np.concatenate(self._audio)
            local = first_audible_sample(buf, self.sr)
            while local is not None:
                onset = self._first + local
                piece = next((p for p in play(self.items, self.sr) if p.first <= onset < p.first + p.n), None)
                if piece is not None:
                    self.onset_ns = piece.start_ns + (onset - piece.first) * 1e9 / self.sr
                    self._audio = []
                    return
                self._first, buf = onset + 1, buf[local + 1 :]  # dropped by a barge-in before it was heard
                self._audio = [buf]
                local = first_audible_sample(buf, self.sr)


def drive_system(
    job,
    session: Session,
    audio: np.ndarray,
    t0: int,
    injections: list[Injection],
    record: Callable[[OutputChunk, int], None],
    timeout_exc: type[Exception],
) -> None:
    """Stream the microphone into ``session`` until listening stops (module docstring). Raises ``timeout_exc``
    at the limit when an audible answer is still going; returns otherwise (the caller writes the output)."""
    s, b = job.settings, job.backend
    in_sr, out_sr = b.input_sample_rate, b.output_sample_rate
    hop = max(1, int(round(s.chunk_ms * in_sr / 1000.0)))
    mic = Microphone(audio, in_sr, s.tail, s.tail_noise_dbfs, noise_seed(s.seed, job.utt.id))
    limit = t0 + int((audio.size / in_sr + s.timeout_s) * 1e9)
    heard = Heard(out_sr)
    pending = list(injections)
    placed: list[tuple[int, Injection]] = []
    injected_until = 0
    self_endpointing = not hasattr(session, "idle")

    def take(chunk, t: int) -> None:
        record(chunk, t)
        heard.add(chunk, t)

    i = 0
    while not job.final:
        due = t0 + int((i + 1) * hop / in_sr * 1e9)
        job.stage = "poll"
        while not job.final and not session.done:
            t = now_ns()
            if t >= due:
                break
            chunk = session.poll((due - t) / 1e9)
            if chunk is not None:
                take(chunk, now_ns())
        if job.final or session.done:
            break
        start = i * hop
        if pending and heard.onset_ns is not None and heard.onset_ns <= now_ns():  # heard, not just queued
            for inj in pending:
                at_s = (heard.onset_ns - t0) / 1e9 + inj.after_output_ms / 1000.0
                wanted = int(np.ceil(at_s * in_sr))
                at = max(start, -(-wanted // hop) * hop)
                mic.add(at, inj.audio)
                placed.append((at, inj))
                injected_until = max(injected_until, at + inj.audio.size)
            pending = []
        for at, inj in placed:
            if start <= at < start + hop:
                job.emit(
                    {
                        "e": "inject",
                        "t": now_ns(),
                        "what": inj.what,
                        "at_s": at / in_sr,
                        "speech_s": [at / in_sr + inj.speech_s[0], at / in_sr + inj.speech_s[1]],
                        "label": inj.label,
                    }
                )
        piece = mic.read(start, hop)
        job.emit({"e": "push", "t": now_ns(), "n": int(piece.size)})
        job.stage = "push"
        session.push(piece)
        i += 1
        t = now_ns()
        if t >= limit:
            if heard.onset_ns is not None:
                _skip(job, pending, "the listening limit came first")
                raise timeout_exc
            break
        if pending or start + hop < injected_until or heard.onset_ns is None:
            continue
        if heard.played_end_ns > t:
            continue
        if self_endpointing:  # quiet since its last output, and since the user's injected speech ended
            quiet_since = max(heard.last_chunk_ns or t0, t0 + injected_until / in_sr * 1e9)
            if t - quiet_since >= s.settle_s * 1e9:
                break
        elif session.idle:
            break
    if not job.final:
        why = "the session ended first" if session.done else "nothing audible was heard before the limit"
        _skip(job, pending, why)
        job.emit({"e": "done", "t": now_ns()})


def _skip(job, pending: list[Injection], why: str) -> None:
    for inj in pending:
        job.emit({"e": "inject", "what": inj.what, "label": inj.label, "skipped": why})
