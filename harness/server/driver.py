"""Drive one blocking backend session (push/poll) from its own thread, so the server's event loop never blocks.

The event loop hands input to the thread through a queue; the thread hands every output chunk back as soon as
``poll()`` returns it, through a bounded asyncio queue. When that queue stays full for ``send_timeout_s`` (the
client does not read), the turn fails with ``backpressure`` instead of buffering without limit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from ..backend import OutputChunk, Session

_END = object()


@dataclass
class Finished:
    """The session is done; no more output will come."""


@dataclass
class Failed:
    """The turn failed: ``code`` is a protocol error code (``backend_error``, ``backpressure``)."""

    code: str
    message: str


class SessionDriver:
    """Own one backend :class:`~harness.backend.Session` in a worker thread for one turn."""

    def __init__(
        self,
        session: Session,
        loop: asyncio.AbstractEventLoop,
        queue_frames: int,
        send_timeout_s: float,
        name: str = "turn",
    ) -> None:
        self.session = session
        self.loop = loop
        self.outputs: asyncio.Queue = asyncio.Queue(maxsize=queue_frames)
        self.failure: asyncio.Future = (
            loop.create_future()
        )  # set when output cannot be delivered (backpressure)
        self.send_timeout_s = send_timeout_s
        self._inputs: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"s2s-server-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def push(self, pcm: np.ndarray) -> None:
        self._inputs.put(pcm)

    def end_input(self) -> None:
        self._inputs.put(_END)

    def stop(self) -> None:
        """Stop the worker and close the backend session (this also cuts a backend stuck inside ``poll``)."""
        self._stop.set()
        if self.session is None:
            return
        try:
            self.session.close()
        except Exception:  # closing a broken session must not hide the original failure
            pass

    def release(self) -> None:
        """Drop every reference to the turn's audio and session once the turn is over, so its memory is freed at
        once even when an error's traceback (a reference cycle) keeps this driver alive until the next gc."""
        self.session = None  # type: ignore[assignment]
        for q in (self._inputs, self.outputs):
            while True:
                try:
                    q.get_nowait()
                except (queue.Empty, asyncio.QueueEmpty):
                    break

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _emit(self, item: OutputChunk | Finished | Failed) -> bool:
        """Hand ``item`` to the event loop; False (and the turn fails) if the client has not read for too long."""
        future = asyncio.run_coroutine_threadsafe(self.outputs.put(item), self.loop)
        try:
            future.result(timeout=self.send_timeout_s)
            return True
        except concurrent.futures.TimeoutError:
            future.cancel()
            self._fail_now(
                Failed(
                    "backpressure",
                    f"the client has not read its answer for {self.send_timeout_s:g} s "
                    f"({self.outputs.maxsize} frames queued); closing the session",
                )
            )
            return False
        except (concurrent.futures.CancelledError, RuntimeError):  # loop closed or turn cancelled
            return False

    def _fail_now(self, failure: Failed) -> None:
        """Report a failure that must not wait behind queued output (the sender itself may be stuck)."""

        def settle() -> None:
            if not self.failure.done():
                self.failure.set_result(failure)

        try:
            self.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop is gone: nobody is left to tell
            pass

    def _run(self) -> None:
        ended = False
        session = self.session
        try:
            while not self._stop.is_set():
                if not ended:
                    # While the user speaks, wait on the input queue (it wakes at once when audio or the end of
                    # the turn arrives) and only peek at the output, so input never waits behind a blocking poll.
                    try:
                        item = self._inputs.get(timeout=0.005)
                    except queue.Empty:
                        item = None
                    while item is not None:
                        if item is _END:
                            session.end_input()
                            ended = True
                        else:
                            session.push(item)
                        try:
                            item = self._inputs.get_nowait()
                        except queue.Empty:
                            item = None
                if self._stop.is_set():
                    return
                if session.done:
                    self._emit(Finished())
                    return
                t0 = time.perf_counter()
                chunk = session.poll(timeout=0.05 if ended else 0.0)
                if self._stop.is_set():
                    return
                if chunk is not None:
                    if not self._emit(chunk):
                        return
                elif ended and time.perf_counter() - t0 < 0.001:
                    time.sleep(0.002)  # the backend returned at once: do not spin
        except Exception as exc:
            if not self._stop.is_set():
                self._emit(Failed("backend_error", f"the backend failed: {type(exc).__name__}: {exc}"))
