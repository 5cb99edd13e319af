"""The engine in worker processes: each worker owns an :class:`~custom_model.engine.Engine` and its own GIL.

In one process the engine thread shares the GIL with the server's event loop and its per-session threads: every
time a native call returns, the engine waits for the GIL, up to Python's switch interval (5 ms), and a tick that
costs 14 ms alone took 20-22 ms inside the server (measured with 16 users on a 2-core Zen 4, see
``reports/engine.md``). A worker process runs one loop with nothing to contend with: take the commands that
arrived (open, push, end of input, close), step one tick, send that tick's events to the server in one message.
With ``workers=N`` the sessions are spread over ``N`` workers (a new session goes to the one with the fewest),
each stepping its own batch, so a machine's cores serve in parallel.

A session's tokens do not depend on which worker serves it or on who else is connected there (rows never mix,
and each session draws from its own generator): ``tests/test_engine_process.py``.

:class:`ProcessEngine` has the interface of :class:`~custom_model.engine.Engine` that the backend uses
(``open(policy, emit)``, ``variant``, ``max_slots``, ``selection``, ``stop()``, ``error``); ``emit`` is called from
the worker's reader thread in this process. A worker that dies (killed, crashed) fails its open sessions with
an error naming it and its exit code; the other workers go on.
"""

from __future__ import annotations

import io
import itertools
import multiprocessing as mp
import threading
import time
import traceback
from dataclasses import dataclass

import numpy as np

from .engine import Emit, TurnPolicy

READY_TIMEOUT_S = 900.0
"""Building a worker's graphs (``optimize=auto`` decides and exports once per machine, then it is cached)."""


class EngineWorkerError(RuntimeError):
    """A worker process failed to start, failed a tick, or went away."""


@dataclass
class _Module:
    """A module as its class, config and weights (parametrized modules, e.g. weight norm, do not pickle)."""

    cls: type
    config: object
    state: dict
    dtype: object
    device: str

    @classmethod
    def of(cls, module) -> _Module:
        p = next(module.parameters())
        state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
        return cls(type(module), module.config, state, p.dtype, str(p.device))

    def build(self):
        module = self.cls(self.config)
        module.load_state_dict(self.state)
        return module.to(self.device, self.dtype).eval()


@dataclass
class _Spec:
    """The model a worker serves (sent pickled, the weights by value; the same bytes for every worker)."""

    model: _Module
    codec: _Module
    silence_codes: object


def _serialise(spec: _Spec) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(spec, buf)
    return buf.getvalue()


def _worker_main(conn, blob: bytes, kwargs: dict) -> None:  # pragma: no cover - runs in the child (tested)
    """The worker process: build the engine (``kwargs``: :class:`~custom_model.engine.Engine`'s), say ready,
    then loop: commands in, one tick, events out."""
    import torch

    try:
        spec = torch.load(io.BytesIO(blob), weights_only=False)
        torch.set_num_threads(max(1, kwargs["threads"]))
        from . import Engine, frame_codec

        engine = Engine(
            spec.model.build(),
            frame_codec(spec.codec.build()),
            spec.silence_codes.to(spec.codec.device),
            **kwargs,
        )
        engine.prepare()
    except BaseException:
        conn.send(("failed", traceback.format_exc()))
        return
    conn.send(
        ("ready", {"variant": engine.variant, "slots": engine.max_slots, "selection": engine.selection})
    )
    sessions: dict[int, object] = {}
    outbox: list[tuple[int, str, object]] = []  # filled by this loop and by the engine's decode thread
    send_lock = threading.Lock()

    def flush() -> None:
        """Send the events so far in one message (called after each tick and after each decode)."""
        with send_lock:
            n = len(outbox)
            if n:
                events = outbox[:n]
                del outbox[:n]  # what the other thread appended meanwhile stays for the next message
                conn.send(("events", events))

    engine.on_decoded = flush

    def emitter(sid: int) -> Emit:
        def emit(kind: str, payload: object) -> None:
            if kind == "error":  # an exception may not unpickle in the server: send its text
                payload = f"{type(payload).__name__}: {payload}"
            outbox.append((sid, kind, payload))
            if kind in ("done", "error"):
                sessions.pop(sid, None)

        return emit

    methods = {"push": "push", "end": "end_input", "close": "close"}

    def handle(msg) -> bool:
        op = msg[0]
        if op == "stop":
            return False
        if op == "open":
            sessions[msg[1]] = engine.open(msg[2], emitter(msg[1]))
        elif (s := sessions.get(msg[1])) is not None:  # a session that ended already ignores the rest
            getattr(s, methods[op])(*msg[2:])
        return True

    try:
        with torch.inference_mode():
            busy = False
            while True:
                # drain what arrived; wait only when no session can step
                if busy:
                    timeout = 0.0
                else:
                    with engine.cond:
                        timeout = engine.idle_s()
                while conn.poll(timeout):
                    if not handle(conn.recv()):
                        return
                    timeout = 0.0
                with engine.cond:
                    work = engine.collect()
                busy = work is not None
                if busy:
                    engine.tick(*work)
                flush()
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return  # the server went away
    except BaseException as exc:
        engine.fail(exc)
        try:
            flush()
            with send_lock:
                conn.send(("failed", traceback.format_exc()))
        except OSError:
            pass


class _Worker:
    """One worker process seen from the server: its pipe, its reader thread and the sessions it serves."""

    def __init__(self, index: int, ctx, blob: bytes, kwargs: dict) -> None:
        self.index = index
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_worker_main, args=(child, blob, kwargs), name=f"s2s-engine-{index}", daemon=True
        )
        self.proc.start()
        child.close()
        self.send_lock = threading.Lock()
        self.emits: dict[int, Emit] = {}
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.info: dict = {}
        self.thread: threading.Thread | None = None

    def wait_ready(self, timeout_s: float) -> dict:
        # poll in steps: a child that dies before it took its end of the pipe leaves no EOF to see
        deadline = time.monotonic() + timeout_s
        while not self.conn.poll(0.2):
            if not self.proc.is_alive():
                raise EngineWorkerError(
                    f"engine worker {self.index} exited with code {self.proc.exitcode} while building its engine"
                )
            if time.monotonic() > deadline:
                self.proc.kill()
                raise EngineWorkerError(
                    f"engine worker {self.index} did not build its engine within {timeout_s:g} s"
                )
        try:
            kind, payload = self.conn.recv()
        except EOFError:
            self.proc.join(5.0)
            raise EngineWorkerError(
                f"engine worker {self.index} exited with code {self.proc.exitcode} while building its engine"
            ) from None
        if kind != "ready":
            raise EngineWorkerError(f"engine worker {self.index} could not build its engine:\n{payload}")
        self.info = payload
        self.thread = threading.Thread(target=self._read, name=f"s2s-engine-{self.index}-reader", daemon=True)
        self.thread.start()
        return payload

    def send(self, msg) -> None:
        with self.send_lock:
            self.conn.send(msg)

    def _read(self) -> None:
        try:
            while True:
                kind, payload = self.conn.recv()
                if kind == "events":
                    for sid, what, data in payload:
                        with self.lock:
                            emit = self.emits.get(sid)
                            if what in ("done", "error"):
                                self.emits.pop(sid, None)
                        if emit is not None:
                            emit(what, EngineWorkerError(data) if what == "error" else data)
                elif kind == "failed":
                    self._fail(EngineWorkerError(f"engine worker {self.index} failed:\n{payload}"))
                    return
        except (EOFError, OSError):
            self.proc.join(1.0)
            code = self.proc.exitcode
            self._fail(EngineWorkerError(f"engine worker {self.index} went away (exit code {code})"))

    def _fail(self, exc: BaseException) -> None:
        with self.lock:
            self.error = exc
            emits, self.emits = self.emits, {}
        for emit in emits.values():
            emit("error", exc)

    def stop(self, timeout_s: float) -> None:
        try:
            self.send(("stop",))
        except OSError:
            pass
        self.proc.join(timeout_s)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5.0)
        self.conn.close()


class ProcessSession:
    """A session served by a worker; ``push``/``end_input``/``close`` may be called from any thread."""

    def __init__(self, worker: _Worker, sid: int) -> None:
        self.worker, self.sid = worker, sid
        self.input_ended = False

    def push(self, pcm: np.ndarray) -> None:
        pcm = np.asarray(pcm, dtype=np.float32)
        if pcm.ndim != 1:
            raise ValueError(f"expected mono audio as a 1-D array but got shape {pcm.shape}")
        if self.input_ended:
            raise RuntimeError("push() after end_input(): this turn's input is over")
        self.worker.send(("push", self.sid, pcm))

    def end_input(self) -> None:
        self.input_ended = True
        self.worker.send(("end", self.sid))

    def close(self) -> None:
        try:
            self.worker.send(("close", self.sid))
        except OSError:  # the worker is gone; its sessions were failed already
            pass


class ProcessEngine:
    """``workers`` engine processes serving one model; the interface of :class:`~custom_model.engine.Engine`.

    ``engine_kwargs`` are :class:`~custom_model.engine.Engine`'s (``max_slots`` is per worker). The first worker
    decides ``optimize=auto`` (and exports the graphs); the others are started with its choice.
    """

    def __init__(
        self, model, codec, silence_codes, *, workers: int = 1, threads: int = 1, **engine_kwargs
    ) -> None:
        if workers < 1:
            raise ValueError(f"Expected workers >= 1 but got {workers}")
        ctx = mp.get_context("spawn")  # no fork: the server has threads (and maybe a GPU context)
        self.workers: list[_Worker] = []
        self._ids = itertools.count()
        kwargs = dict(engine_kwargs, threads=threads)
        blob = _serialise(_Spec(_Module.of(model), _Module.of(codec), silence_codes.cpu()))
        try:
            for i in range(workers):
                worker = _Worker(i, ctx, blob, dict(kwargs))
                self.workers.append(worker)
                info = worker.wait_ready(READY_TIMEOUT_S)
                kwargs["optimize"] = info["variant"]  # the others need not decide again
        except BaseException:
            self.stop()
            raise
        first = self.workers[0].info
        self.variant = first["variant"]
        self.selection = first["selection"]
        self.slots_per_worker = first["slots"]
        self.max_slots = self.slots_per_worker * workers

    @property
    def error(self) -> BaseException | None:
        errors = [w.error for w in self.workers if w.error is not None]
        return errors[0] if len(errors) == len(self.workers) else None

    def open(self, policy: TurnPolicy, emit: Emit) -> ProcessSession:
        alive = [w for w in self.workers if w.error is None]
        if not alive:
            raise RuntimeError(f"every engine worker failed: {self.workers[0].error}")
        worker = min(alive, key=lambda w: len(w.emits))
        sid = next(self._ids)
        with worker.lock:
            worker.emits[sid] = emit
        worker.send(("open", sid, policy))
        return ProcessSession(worker, sid)

    def start(self) -> ProcessEngine:
        return self

    def prepare(self) -> None:
        """The workers built their graphs before they said ready."""

    def stop(self, timeout_s: float = 5.0) -> None:
        for worker in self.workers:
            worker.stop(timeout_s)
