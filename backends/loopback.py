"""``loopback``: the harness's calibration backend.

It answers with the user's own utterance, starting ``delay_ms`` after the end of input, in chunks of ``chunk_ms``,
produced at ``rtf`` x real time (0 = all at once; above 1 = slower than real time, so playback stalls). By default
it starts at the first audible sample of the input, so its TTFA equals ``delay_ms`` plus the harness's own
overhead: that is what makes it a calibration. It can misbehave on purpose (``fail=crash|hang|stuck`` on every
``every``-th session) so that the runner's fault handling can be tested: ``hang`` blocks in ``poll`` until the
harness closes the session, ``stuck`` never returns at all (closing does not help: a thread lost for good).
"""

from __future__ import annotations

import threading
import time

import numpy as np

from harness.audio import first_audible_sample
from harness.backend import Backend, Option, OutputChunk, Session
from harness.hookspecs import hookimpl


class LoopbackBackend(Backend):
    name = "loopback"
    description = "echoes the input after delay_ms (calibration; can crash or hang on purpose)"
    options = {
        "delay_ms": Option(float, 0.0, "time from end of input to the first output chunk", min=0),
        "chunk_ms": Option(float, 20.0, "output chunk length", min=1),
        "rtf": Option(
            float, 0.0, "output production speed: chunk k is ready at delay + k*chunk_ms*rtf", min=0
        ),
        "trim": Option(bool, True, "start the answer at the input's first audible sample"),
        "fail": Option(str, "none", "misbehave on purpose", choices=("none", "crash", "hang", "stuck")),
        "every": Option(int, 1, "with fail=: fail on every N-th session (1 = all)", min=1),
    }

    def __init__(self, **opts) -> None:
        super().__init__(**opts)
        self._sessions = 0
        self._lock = threading.Lock()

    def open_session(self) -> Session:
        with self._lock:
            self._sessions += 1
            index = self._sessions
        fail = self.opts["fail"] if index % self.opts["every"] == 0 else "none"
        return _LoopbackSession(self, fail)


class _LoopbackSession(Session):
    def __init__(self, backend: LoopbackBackend, fail: str) -> None:
        self.sr = backend.output_sample_rate
        self.o = backend.opts
        self.fail = fail
        self.chunks: list[np.ndarray] = []
        self.answer: np.ndarray | None = None
        self.t_end: float | None = None
        self.sent = 0
        self.closed = threading.Event()

    def push(self, pcm: np.ndarray) -> None:
        self.chunks.append(np.asarray(pcm, dtype=np.float32))

    def end_input(self) -> None:
        self.t_end = time.perf_counter()
        audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        if self.o["trim"]:
            onset = first_audible_sample(audio, self.sr)
            audio = audio[onset:] if onset is not None else audio[:0]
        self.answer = audio

    def _due(self, k: int) -> float:
        return self.t_end + (self.o["delay_ms"] + k * self.o["chunk_ms"] * self.o["rtf"]) / 1000.0

    def poll(self, timeout: float = 0.0) -> OutputChunk | None:
        if self.answer is None or self.done:
            if timeout > 0:
                time.sleep(timeout)
            return None
        if self.fail == "hang":
            self.closed.wait()  # a real hang: ignores the timeout, returns only when the runner closes us
            return None
        if self.fail == "stuck":
            threading.Event().wait()  # never returns, whatever the harness does
        wait = self._due(self.sent) - time.perf_counter()
        if wait > 0:
            if wait > timeout:
                if timeout > 0:
                    time.sleep(timeout)
                return None
            time.sleep(wait)
        if self.fail == "crash":
            raise RuntimeError("loopback: planned crash (fail=crash)")
        hop = max(1, int(round(self.o["chunk_ms"] * self.sr / 1000.0)))
        k = self.sent
        self.sent += 1
        return OutputChunk(audio=self.answer[k * hop : (k + 1) * hop])

    @property
    def done(self) -> bool:
        if self.answer is None or self.fail in ("hang", "stuck"):
            return False
        hop = max(1, int(round(self.o["chunk_ms"] * self.sr / 1000.0)))
        return self.sent * hop >= self.answer.size and (self.fail != "crash")

    def close(self) -> None:
        self.closed.set()


@hookimpl
def register_backends(register):
    register(LoopbackBackend)
