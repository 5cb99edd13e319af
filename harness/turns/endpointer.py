"""The endpointer adapter: a turn manager in front of backends that cannot tell for themselves that the user has
finished (offline systems, cascades, ``loopback``), for ``endpointing=system``.

A deployed cascade puts a voice activity detector in front of its ASR and ends the user's turn after a stretch of
silence (the *hangover*); its users wait for that on every turn, and a pause longer than the hangover ends their
turn too early. The adapter does exactly that, so these backends' numbers include it:

- It listens to every pushed chunk with a streaming VAD (:class:`StreamingVAD`): silero-vad's ONNX model on 32 ms
  windows at 16 kHz, speech when the probability reaches ``threshold``, silence below ``threshold - 0.15`` (the
  rule of silero's ``VADIterator``), or the harness's energy rule (``harness.vad``'s floor and range) without
  silero. Decisions are made on the audio itself, so the speaker's clock rules, not the machine's.
- A user turn starts when speech has lasted ``min_speech_ms``; it ends ``hangover_ms`` after the speech stops.
  Then the adapter calls the backend session's ``end_input()`` and says so with the mark ``endpoint``.
- Barge-in (``barge_in``): when a new user turn starts while the answer's turn is open, the adapter emits the mark
  ``barge_in`` (the player stops: see :mod:`.timeline`), closes the backend session and opens a new one that gets
  the new speech from ``preroll_ms`` before it started. Without barge-in, user speech is ignored until the answer
  is complete. Every user turn is a new backend session, so a conversation is a chain of the backend's turns.

The adapter never ends by itself (``done`` stays False): the runner's driver stops listening (:mod:`.driver`).
Its settings go into run.json (``endpointer``) and are part of what a run measured.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..backend import OutputChunk, Session

VAD_RATE = 16000
WINDOW = 512
"""Samples per VAD decision at 16 kHz (32 ms; silero's window)."""
CONTEXT = 64
"""Samples of the previous window silero sees before each one (its v5 ONNX model's context)."""
NEG_THRESHOLD_OFFSET = 0.15
ENDPOINT_MARK = "endpoint"
BARGE_IN_MARK = "barge_in"


@dataclass(frozen=True)
class EndpointerSettings:
    """The adapter's settings (module docstring); all times in ms of the user's audio."""

    vad: str = "auto"
    """``silero``, ``energy`` or ``auto`` (silero when installed)."""
    threshold: float = 0.5
    hangover_ms: float = 500.0
    min_speech_ms: float = 250.0
    barge_in: bool = True
    preroll_ms: float = 300.0

    def validate(self) -> None:
        from ..vad import METHODS

        if self.vad not in METHODS:
            raise ValueError(
                f"Expected endpointer vad to be one of {', '.join(METHODS)} but got {self.vad!r}"
            )
        if not 0.15 < self.threshold < 1:
            raise ValueError(f"Expected endpointer threshold in (0.15, 1) but got {self.threshold}")
        for name in ("hangover_ms", "min_speech_ms", "preroll_ms"):
            value = getattr(self, name)
            if not (value >= 0 and np.isfinite(value)):
                raise ValueError(f"Expected endpointer {name} to be a finite number >= 0 but got {value}")

    def describe(self) -> dict[str, Any]:
        """What run.json records: the resolved VAD method, its version, and every setting."""
        from ..vad import resolve_method, vad_info

        method = resolve_method(self.vad)
        info = vad_info(method)
        return {
            "method": method,
            "version": info["version"],
            "model": info["model"],
            "window_ms": WINDOW * 1000 / VAD_RATE,
            **asdict(self),
        }


class StreamingVAD:
    """Speech decisions on 32 ms windows of a 16 kHz stream: ``feed(pcm)`` returns ``(window end sample, speech
    probability)`` for every window completed by ``pcm``."""

    def __init__(self, method: str) -> None:
        from ..vad import ENERGY_FLOOR_DBFS, ENERGY_RANGE_DB, resolve_method

        self.method = resolve_method(method)
        self._buf = np.zeros(0, np.float32)
        self._samples = 0
        self._loudest_db = -np.inf
        self._floor_db, self._range_db = ENERGY_FLOOR_DBFS, ENERGY_RANGE_DB
        if self.method == "silero":
            from ..vad import _silero_model

            self._session = _silero_model().session  # shared; its run() is thread-safe, the state is ours
            self._state = np.zeros((2, 1, 128), np.float32)
            self._context = np.zeros(CONTEXT, np.float32)

    def feed(self, pcm16k: np.ndarray) -> list[tuple[int, float]]:
        self._buf = np.concatenate([self._buf, np.asarray(pcm16k, np.float32)])
        out = []
        while self._buf.size >= WINDOW:
            window, self._buf = self._buf[:WINDOW], self._buf[WINDOW:]
            self._samples += WINDOW
            out.append((self._samples, self._probability(window)))
        return out

    def _probability(self, window: np.ndarray) -> float:
        if self.method == "silero":
            x = np.concatenate([self._context, window])[None, :]
            prob, self._state = self._session.run(
                None, {"input": x, "state": self._state, "sr": np.array(VAD_RATE, dtype=np.int64)}
            )
            self._context = window[-CONTEXT:].copy()
            return float(prob.reshape(-1)[0])
        db = 10 * np.log10(max(float(np.mean(np.square(window, dtype=np.float64))), 1e-20))
        self._loudest_db = max(self._loudest_db, db)
        return 1.0 if db >= max(self._floor_db, self._loudest_db - self._range_db) else 0.0


class TurnDetector:
    """User turns from VAD decisions: ``feed`` returns ``("start", speech start sample)`` when speech has lasted
    ``min_speech_ms`` and ``("end", last speech sample)`` ``hangover_ms`` after it stopped (16 kHz samples)."""

    def __init__(self, settings: EndpointerSettings) -> None:
        self.s = settings
        self.vad = StreamingVAD(settings.vad)
        self.in_speech = False
        self.confirmed = False
        self.speech_start = 0
        self.last_speech = 0
        self._voiced = 0
        self._silence = 0

    def feed(self, pcm16k: np.ndarray) -> list[tuple[str, int]]:
        events = []
        min_speech = self.s.min_speech_ms * VAD_RATE / 1000
        hangover = self.s.hangover_ms * VAD_RATE / 1000
        for end, prob in self.vad.feed(pcm16k):
            if prob >= self.s.threshold:
                if not self.in_speech:
                    self.in_speech, self.speech_start, self._voiced = True, end - WINDOW, 0
                self._voiced += WINDOW
                self._silence = 0
                self.last_speech = end
                if not self.confirmed and self._voiced >= min_speech:
                    self.confirmed = True
                    events.append(("start", self.speech_start))
            elif self.in_speech and (self._silence or prob < self.s.threshold - NEG_THRESHOLD_OFFSET):
                self._silence += WINDOW
                if self._silence >= hangover:
                    if self.confirmed:
                        events.append(("end", self.last_speech))
                    self.in_speech = self.confirmed = False
                    self._silence = 0
        return events


class EndpointedSession(Session):
    """A backend's sessions behind the endpointer (module docstring); ``open_inner`` opens one backend turn."""

    def __init__(
        self, open_inner: Callable[[], Session], settings: EndpointerSettings, sample_rate: int
    ) -> None:
        self.settings = settings
        self.sample_rate = sample_rate
        self.detector = TurnDetector(settings)
        self._open_inner = open_inner
        self.inner = open_inner()
        self.listening = True
        """True while the backend session takes the microphone (the user's turn); False once it answers."""
        self.turn_started = False
        self.answered = False
        self._marks: deque[OutputChunk] = deque()
        self._resampler = None
        if sample_rate != VAD_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(sample_rate, VAD_RATE, 1, dtype="float32")
        self._recent: deque[np.ndarray] = deque()
        self._recent_samples = 0
        self._pushed = 0
        self._closed = False

    # -- the microphone ------------------------------------------------------------------------------------------
    def push(self, pcm: np.ndarray) -> None:
        pcm = np.asarray(pcm, dtype=np.float32)
        self._remember(pcm)
        self._pushed += pcm.size
        if self.listening:
            self.inner.push(pcm)
        x16 = self._resampler.resample_chunk(pcm) if self._resampler is not None else pcm
        for kind, at in self.detector.feed(x16):
            if kind == "start":
                self._user_started(at)
            elif kind == "end" and self.listening and self.turn_started:
                self._marks.append(OutputChunk(marks=(ENDPOINT_MARK,)))
                self.listening = False
                self.inner.end_input()

    def _user_started(self, at16k: int) -> None:
        if self.listening:
            self.turn_started = True
        elif self.settings.barge_in or self.inner.done:
            self._new_turn(at16k)

    def _new_turn(self, at16k: int) -> None:
        """The user has the floor again: stop the answer, open a new backend turn fed from before their speech."""
        self._marks.append(OutputChunk(marks=(BARGE_IN_MARK,)))
        old, self.inner = self.inner, None
        threading.Thread(target=_close_quietly, args=(old,), daemon=True).start()
        self.inner = self._open_inner()
        start = int(at16k * self.sample_rate / VAD_RATE) - int(
            self.settings.preroll_ms * self.sample_rate / 1000
        )
        self.inner.push(self._since(max(0, start)))
        self.listening = self.turn_started = True

    def _remember(self, pcm: np.ndarray) -> None:
        keep = int(self.sample_rate * (self.settings.preroll_ms + self.settings.min_speech_ms + 1000) / 1000)
        self._recent.append(pcm)
        self._recent_samples += pcm.size
        while self._recent and self._recent_samples - self._recent[0].size >= keep:
            self._recent_samples -= self._recent.popleft().size

    def _since(self, sample: int) -> np.ndarray:
        """The pushed audio from stream sample ``sample`` on (as far as it is remembered)."""
        audio = np.concatenate(list(self._recent)) if self._recent else np.zeros(0, np.float32)
        first = self._pushed - audio.size
        return audio[max(0, sample - first) :]

    def end_input(self) -> None:
        """The runner's oracle: ``endpointing=oracle`` never wraps a session, so this is only the last word."""
        if self.listening:
            self.listening = False
            self.inner.end_input()

    # -- the system's side ---------------------------------------------------------------------------------------
    def poll(self, timeout: float = 0.0) -> OutputChunk | None:
        if self._marks:
            return self._marks.popleft()
        if not self.listening and self.inner.done:
            if self.detector.confirmed:  # the user kept talking through an answer they could not interrupt
                self._new_turn(self.detector.speech_start)
                return self._marks.popleft()
            if timeout > 0:
                time.sleep(timeout)
            return None
        chunk = self.inner.poll(timeout)
        if chunk is not None and chunk.audio is not None and not self.listening:
            self.answered = True
        return chunk

    @property
    def idle(self) -> bool:
        """Nothing is going on: an answer has been given, no user turn is open and no answer is being made."""
        if not self.answered or self.detector.in_speech:
            return False
        return (self.listening and not self.turn_started) or (not self.listening and self.inner.done)

    @property
    def done(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        if self.inner is not None:
            self.inner.close()


def _close_quietly(session: Session) -> None:
    try:
        session.close()
    except Exception:  # noqa: BLE001 - an abandoned turn's close is best effort
        pass
