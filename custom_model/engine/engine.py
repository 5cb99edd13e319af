"""The engine: one thread that steps every live session of a loaded model as one batch, tick after tick.

Sessions join and leave at any tick (continuous batching, as vLLM does for text). Each session owns a slot of
:class:`SlotState` (its KV ring, previous tokens, position, codec states and its own sampling generator) and a
:class:`TurnTracker`. A tick takes one 20 ms frame from every *runnable* session: a listening session whose next
input frame is complete, or an answering one (its input has ended: the microphone hears silence, and it runs
ahead of real time as fast as ticks go, like the per-session path did). Runnable slots are stepped together, on
the contiguous slots ``0 .. hi-1`` up to the highest runnable one: the rows of sessions that are waiting for
audio are computed beside them and thrown away (their state is not written), which is far cheaper than copying
the runnable rows' KV rings into a batch; only when that would waste many rows are the runnable rows gathered
(:meth:`Engine._step_plan`). A runner that takes any batch size (eager, ONNX Runtime) runs exactly those rows;
for traced and compiled graphs batch sizes are rounded up to a prepared size (powers of two) so they are reused,
and the padding rows' results are thrown away.

With ``decode_thread=True`` the answering sessions' new frames are decoded by a second thread while the engine's
thread steps the next tick: the decode graph reads and writes only decoder state, and ONNX Runtime releases the
GIL, so where a core is free the decode leaves the tick's critical path (ticks of 32 answering sessions 16% shorter
on an idle 2-core machine; under the load test on 2 cores, with the load client on the same machine, no capacity
gained: ``reports/engine.md``). One decode is in flight at a time; slots move, reset or end only once it is over,
so every session's events keep their order.

Rows never mix and every session draws from its own generator, so a session's tokens do not depend on who else
is connected (``tests/test_engine.py``). The engine thread spends a tick in one native call for the step (with
``optimize=onnxruntime``: one ONNX Runtime run, which releases the GIL) plus a little bookkeeping, so the
harness's clocks and a server's event loop stay responsive; ``benchmarks/`` measures how much of a tick holds the
GIL. ``S2S_ENGINE_TRACE=PREFIX`` writes one JSON line per tick (:class:`TickTrace`).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass

import numpy as np
import torch

from custom_model.s2s.generate import TurnTracker
from custom_model.s2s.model import S2SModel

from .codec_api import FrameCodec
from .fused_step import (
    FORCE_NONE,
    FORCE_SILENCE_ID,
    FORCE_SPEECH_ID,
    GRAPH_VERSION,
    DecodeStep,
    EncodeStep,
    FusedS2SStep,
)
from .slots import SlotState
from .variants import Runner, build_runner, module_digest, quantize_linears

Emit = Callable[[str, object], None]
"""``emit(kind, payload)``: ``("first_token", None)``, ``("audio", float32 array)``, ``("done", None)``,
``("error", exception)``; called from the engine thread, must not block."""


@dataclass
class TurnPolicy:
    """How one session's answer starts and ends, in frames; ``force_answer``: random-weights runs (the answer
    is forced to start when the input ends and to last ``max_answer_frames``)."""

    end_silence_frames: int = 2
    max_answer_frames: int = 500
    max_wait_frames: int = 150
    force_answer: bool = False
    seed: int | None = 0
    conversation: bool = False
    """After an answer the session goes on listening and may answer again, until closed (TurnTracker)."""
    lookahead_frames: int = 0
    """0: once its input has ended, the session steps at every tick, as far ahead of real time as ticks go;
    N > 0: it keeps at most N frames of answer audio ahead of real time (counted from its first audio frame) and
    then waits for the clock, so a loaded engine steps everyone in one batch per frame instead of spending its
    time on audio nobody will hear for seconds. Tokens do not change, only when they are computed."""
    prebuffer_frames: int = 1
    """The first audio is sent once this many answer frames are ready (1: at once), when the answer cannot run
    ahead of real time: the engine is loaded (``prebuffer_tick_s``), or the answer starts while the user's audio
    is still coming in (each frame then waits for an input frame: one per 20 ms, with the input's jitter). A player
    starts with the first frame it gets, so the second can come too late and the answer stalls at its start;
    holding back K frames absorbs up to K - 1 frames of jitter and costs the first audio up to K - 1 frames. The
    harness's clock sees the first audio when it arrives, so TTFA pays."""
    prebuffer_tick_s: float = 0.010
    """The engine counts as loaded when its recent tick time (a moving average) is at least this long when the
    answer's first frame is decoded: with ticks under half a frame an answer after the input runs ahead at 2x real
    time or more and cannot stall at its start, so its first audio goes at once. 0: always loaded."""


def prepared_sizes(max_slots: int) -> list[int]:
    """Batch sizes graphs are prepared for: powers of two up to ``max_slots``, and ``max_slots`` itself."""
    sizes, b = [], 1
    while b < max_slots:
        sizes.append(b)
        b *= 2
    return sizes + [max_slots]


def build_graphs(
    model: S2SModel,
    codec: FrameCodec,
    silence_codes: torch.Tensor,
    variant: str,
    temperature: float,
    top_k: int,
    dtype: torch.dtype,
) -> tuple[EncodeStep, DecodeStep]:
    """The two graphs of a tick for ``variant`` (``int8`` quantises a copy of the S2S step's linears)."""
    if variant in ("bf16", "fp16"):
        model = copy.deepcopy(model).to({"bf16": torch.bfloat16, "fp16": torch.float16}[variant])
    elif dtype != torch.float32:
        model = copy.deepcopy(model).to(dtype)
    step = FusedS2SStep(model, temperature, top_k).eval()
    if variant == "int8":
        step = quantize_linears(copy.deepcopy(step))
    return EncodeStep(step, codec).eval(), DecodeStep(codec, silence_codes, model.config.card).eval()


class EngineSession:
    """One conversation turn in the engine. ``push``/``end_input``/``close`` may be called from any thread."""

    def __init__(self, engine: Engine, policy: TurnPolicy, emit: Emit) -> None:
        self.engine = engine
        self.policy = policy
        self.emit = emit
        self.frame_size = engine.codec.frame_size
        self._pending = np.zeros(0, np.float32)
        self._frames: list[np.ndarray] = []
        self.input_ended = False
        self.closed = False
        self.over = False  # takes no more steps (its answer ended); its last frame may still be decoding
        self.finished = False  # its last event ("done" or "error") was emitted
        self.slot: int | None = None
        self.steps = 0
        self.marked_token = False
        self.audio_frames = 0  # answer frames decoded (decode thread)
        self.audio_t0: float | None = None
        self.answer_steps = 0  # answer frames stepped (engine thread): what the lookahead counts
        self.answer_t0: float | None = None
        # its first frame was stepped on an input frame (the user still talking)
        self.answer_paced_by_input = False
        self._held: list[np.ndarray] = []
        self.hold_frames = 1
        self.frame_s = engine.codec.frame_size / engine.codec.sample_rate
        self.tracker = TurnTracker(
            engine.config.silence_id,
            policy.end_silence_frames,
            policy.max_answer_frames,
            policy.max_wait_frames,
            conversation=policy.conversation,
        )

    def push(self, pcm: np.ndarray) -> None:
        pcm = np.asarray(pcm, dtype=np.float32)
        if pcm.ndim != 1:
            raise ValueError(f"expected mono audio as a 1-D array but got shape {pcm.shape}")
        with self.engine.cond:
            if self.input_ended:
                raise RuntimeError("push() after end_input(): this turn's input is over")
            pending = np.concatenate([self._pending, pcm])
            usable = pending.size - pending.size % self.frame_size
            self._frames.extend(pending[:usable].reshape(-1, self.frame_size))
            self._pending = pending[usable:]
            self.engine.cond.notify_all()

    def end_input(self) -> None:
        with self.engine.cond:
            if self._pending.size:
                self._frames.append(np.pad(self._pending, (0, self.frame_size - self._pending.size)))
                self._pending = np.zeros(0, np.float32)
            self.input_ended = True
            self.engine.cond.notify_all()

    def close(self) -> None:
        with self.engine.cond:
            self.closed = True
            self.engine.cond.notify_all()

    # -- engine thread only (under the engine's lock) ----------------------------------------------------------
    def runnable(self, now: float) -> bool:
        if self.over or self.finished or self.closed:
            return False
        if self._frames:
            return True
        return self.input_ended and self.ready_at() <= now

    def flush_held(self) -> None:
        for pcm in self._held:
            self.emit("audio", pcm)
        self._held = []

    def ready_at(self) -> float:
        """When this session may step again with no input (``-inf``: now; see ``TurnPolicy.lookahead_frames``)."""
        ahead = self.policy.lookahead_frames
        if not ahead or self.answer_t0 is None or self.answer_steps < ahead:
            return float("-inf")
        return self.answer_t0 + (self.answer_steps - ahead) * self.frame_s

    def take_frame(self) -> tuple[np.ndarray | None, bool]:
        """(the next input frame or None for silence after the input, whether input has ended for this step)."""
        if self._frames:
            return self._frames.pop(0), False
        return None, True


class Engine:
    """Steps every live session of one model as one batch per tick, in its own thread.

    ``optimize`` is a variant of :mod:`.variants` or ``auto`` (the fastest fp32 variant that passes the parity
    check on this machine, decided once and cached: :func:`custom_model.engine.select.choose_variant`).
    """

    def __init__(
        self,
        model: S2SModel,
        codec: FrameCodec,
        silence_codes: torch.Tensor,
        *,
        max_slots: int = 64,
        optimize: str = "auto",
        temperature: float = 0.0,
        top_k: int = 0,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        threads: int = 1,
        decode_thread: bool = False,
    ) -> None:
        if max_slots < 1:
            raise ValueError(f"Expected max_slots >= 1 but got {max_slots}")
        self.model = model
        self.codec = codec
        self.config = model.config
        self.silence_codes = silence_codes
        self.max_slots = max_slots
        self.temperature = float(temperature)
        self.top_k = int(top_k)
        self.device = torch.device(device)
        self.dtype = dtype
        self.threads = threads
        self.sampling = self.temperature > 0
        self.selection: dict | None = None
        if optimize == "auto":
            from .select import choose_variant

            self.selection = choose_variant(self)
            optimize = self.selection["chosen"]
        self.variant = optimize
        self.runner = self.make_runner(optimize)
        self.state = SlotState(model, codec, max_slots, self.device, self.runner.state_dtype)
        self.sizes = prepared_sizes(max_slots)
        self.cond = threading.Condition()
        self.live: list[EngineSession] = []  # live[i] sits in slot i
        self.waiting: list[EngineSession] = []
        self.ticks = 0
        self.decodes = 0  # decode graph runs (one per tick with audio to decode)
        self.tick_s = 0.0
        self._stop = False
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.decode_thread = decode_thread
        self._decoder: ThreadPoolExecutor | None = None
        self._decoding: Future | None = None
        self.on_decoded: Callable[[], None] | None = None
        """Called in the decode thread after a decode's events were emitted (a worker process sends them)."""
        self.trace = TickTrace.from_env()

    # -- building ----------------------------------------------------------------------------------------------
    def make_runner(self, variant: str) -> Runner:
        encode, decode = build_graphs(
            self.model, self.codec, self.silence_codes, variant, self.temperature, self.top_k, self.dtype
        )
        extra = f"{GRAPH_VERSION}|{variant}|{self.temperature}|{self.top_k}|{torch.__version__}|{_ort_version()}|{self.dtype}"
        digest = module_digest(encode, decode, extra=extra)
        runner = build_runner(variant, encode, decode, self.device, digest, self.threads)
        runner.state_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(variant, self.dtype)
        return runner

    def example_args(self, size: int, state: SlotState | None = None):
        state = state or self.state
        pcm = torch.zeros(size, self.codec.frame_size, device=self.device)
        enc = state.step_inputs(pcm, self.sampling)
        frame = torch.full(
            (size, self.config.n_q), self.config.silence_id, dtype=torch.long, device=self.device
        )
        dec = state.decode_inputs(frame)
        return enc, dec

    def prepare(self) -> None:
        """Build every prepared batch size's graphs (tracing, compiling, exporting), off the clock."""
        enc, dec = {}, {}
        for size in self.sizes:
            enc[size], dec[size] = self.example_args(size)
        self.runner.prepare(enc, dec)

    # -- sessions ----------------------------------------------------------------------------------------------
    def open(self, policy: TurnPolicy, emit: Emit) -> EngineSession:
        session = EngineSession(self, policy, emit)
        with self.cond:
            if self.error is not None:  # checked under the lock the failing thread takes to tell its sessions
                raise RuntimeError(f"the engine thread failed: {self.error!r}") from self.error
            self.waiting.append(session)
            self.cond.notify_all()
        return session

    def start(self) -> Engine:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="s2s-engine", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        with self.cond:
            self._stop = True
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.wait_decoded(raise_error=False)
        if self._decoder is not None:
            self._decoder.shutdown(wait=False)
            self._decoder = None

    # -- the loop ----------------------------------------------------------------------------------------------
    def _admit_and_free(self) -> None:
        """Under the lock: drop finished/closed sessions (the last one moves into the hole), admit waiting ones.

        Slots move and reset only once the decode in flight is over (it reads and writes decoder state rows)."""
        if not (self.waiting or any(s.over or s.finished or s.closed for s in self.live)):
            return
        self.wait_decoded()
        i = 0
        while i < len(self.live):
            s = self.live[i]
            if s.finished or s.closed:
                last = len(self.live) - 1
                if i != last:
                    self.state.move(last, i)
                    self.live[i] = self.live[last]
                    self.live[i].slot = i
                self.live.pop()
                s.slot = None
                if s.closed and not s.finished:
                    s.finished = True
                    s.emit("done", None)
            else:
                i += 1
        while self.waiting and len(self.live) < self.max_slots:
            s = self.waiting.pop(0)
            if s.closed:
                s.finished = True
                s.emit("done", None)
                continue
            s.slot = len(self.live)
            self.live.append(s)
            self.state.reset(s.slot, s.policy.seed)

    def collect(self) -> tuple[list[EngineSession], list[tuple[np.ndarray | None, bool]]] | None:
        """Under the lock: free and admit slots, then the runnable sessions and their frames (None: no work;
        :meth:`idle_s` then says how long until a session waiting for the clock may step)."""
        self._admit_and_free()
        now = time.monotonic()
        batch = [s for s in self.live if s.runnable(now)]
        if not batch:
            return None
        return batch, [s.take_frame() for s in batch]

    def idle_s(self, longest: float = 0.5) -> float:
        """Under the lock: how long to wait for input before a session held by its lookahead may step."""
        now = time.monotonic()
        waits = [
            s.ready_at() - now for s in self.live if s.input_ended and not (s.over or s.finished or s.closed)
        ]
        return max(0.0, min([longest, *waits]))

    def fail(self, exc: BaseException) -> None:
        """Every open session learns of ``exc`` (the engine is unusable from now on)."""
        self.wait_decoded(raise_error=False)
        with self.cond:
            self.error = exc
            for s in self.live + self.waiting:
                if not s.finished:
                    s.finished = True
                    s.emit("error", exc)

    def _loop(self) -> None:
        try:
            with torch.inference_mode():
                while True:
                    with self.cond:
                        while True:
                            if self._stop:
                                return
                            work = self.collect()
                            if work is not None:
                                break
                            self.cond.wait(self.idle_s())
                    self.tick(*work)
        except BaseException as exc:  # every open session learns of it
            self.fail(exc)

    def _size(self, n: int) -> int:
        """The batch size a graph runs for ``n`` rows: ``n``, or the next prepared size for runners that need one."""
        return n if self.runner.any_batch else next(b for b in self.sizes if b >= n)

    def _rows(self, slots: list[int]) -> tuple[int, torch.Tensor | None]:
        """Batch size for ``slots`` and the gather index (None: use the views ``[:size]``).

        Views serve when the slots are ``0 .. n-1`` and any padding rows up to the prepared size hold no live
        session; otherwise the rows are gathered and padded with repeats of the first slot (rows never mix, so
        a repeat computes the same thing and only the first ``n`` rows are written back).
        """
        n = len(slots)
        size = self._size(n)
        if slots == list(range(n)) and (size == n or len(self.live) <= n):
            return size, None
        return size, torch.tensor(slots + [slots[0]] * (size - n), device=self.device)

    GATHER_ROW_COST = 4
    """What gathering one row of the step's inputs costs (its KV ring is copied: ~3 MB for s2s-small), in rows
    of computing: a step runs over the contiguous slots ``0 .. hi-1`` (the rows of sessions that are not
    stepping are computed and thrown away) unless that wastes more than this many rows per stepping row."""

    def _step_plan(self, slots: list[int]) -> tuple[int, torch.Tensor | None]:
        """Batch size and gather index (None: the views ``[:size]``, graph row = slot) of the step graph."""
        n, hi = len(slots), max(slots) + 1
        size = self._size(hi)
        if size - n <= self.GATHER_ROW_COST * n:
            return size, None
        return self._rows(slots)

    def tick(self, batch: list[EngineSession], frames: list[tuple[np.ndarray | None, bool]]) -> None:
        """One step of every session in ``batch`` with its frame (None: silence after the input); ``tick_s``
        follows how long ticks take (a moving average over about the last 20)."""
        t0 = time.perf_counter()
        self._tick(batch, frames)
        self.tick_s += 0.05 * (time.perf_counter() - t0 - self.tick_s)
        if self.trace is not None:
            self.trace.tick(t0, batch, frames, self)

    def _tick(self, batch: list[EngineSession], frames: list[tuple[np.ndarray | None, bool]]) -> None:
        st, c = self.state, self.config
        slots = [s.slot for s in batch]
        size, rows = self._step_plan(slots)
        at = slots if rows is None else list(range(len(batch)))  # each session's row in the graph
        pcm = np.zeros((size, self.codec.frame_size), np.float32)
        for row, (frame, _) in zip(at, frames, strict=True):
            if frame is not None:
                pcm[row] = frame
        for i, (s, (_, ended)) in enumerate(zip(batch, frames, strict=True)):
            s.tracker.input_ended = ended or s.tracker.input_ended
            force = FORCE_NONE
            if s.policy.force_answer:
                force = FORCE_SPEECH_ID if ended else FORCE_SILENCE_ID
            st.force[slots[i]] = force
        pcm_t = torch.from_numpy(pcm).to(self.device)
        if rows is None:
            stepping = None if size == len(batch) else sorted(slots)
            outputs = self.runner.encode(st.step_inputs(pcm_t, self.sampling, stepping))
            tokens, frame = st.commit_step(outputs, stepping)
        else:
            outputs = self.runner.encode(st.step_inputs_rows(pcm_t, rows, self.sampling))
            tokens, frame = st.commit_step_rows(outputs, rows, len(batch))
        self.ticks += 1
        tokens_l = tokens.tolist()
        frame_l = frame.tolist()
        decode: list[int] = []
        last_events: list[EngineSession] = []  # sessions whose held audio and "done" go out from here
        for i, s in enumerate(batch):
            s.steps += 1
            if not s.marked_token and tokens_l[at[i]][0] != c.silence_id:
                s.marked_token = True
                s.emit("first_token", None)
            answering = s.steps > 1 and s.tracker.observe(frame_l[at[i]][0])
            if s.tracker.ended:
                s.over = True
            if answering:
                if s.answer_t0 is None:
                    s.answer_t0 = time.monotonic()
                    s.answer_paced_by_input = not s.tracker.input_ended
                s.answer_steps += 1
                decode.append(i)
            elif s._held or s.tracker.ended:
                last_events.append(s)
        if last_events:  # after the decode in flight, which may hold or send their earlier frames
            self.wait_decoded()
            for s in last_events:
                s.flush_held()  # the answer stopped before the prebuffer filled: send what there is
                if s.tracker.ended:
                    s.finished = True
                    s.emit("done", None)
        if decode:
            job = self._decode_job(batch, slots, decode, frame[[at[i] for i in decode]])
            self.wait_decoded()  # one decode at a time: each continues the decoder states the last one left
            if self.decode_thread:
                if self._decoder is None:
                    self._decoder = ThreadPoolExecutor(1, thread_name_prefix="s2s-engine-decode")
                self._decoding = self._decoder.submit(self._run_decode, *job)
            else:
                self._run_decode(*job)

    def wait_decoded(self, raise_error: bool = True) -> None:
        """Wait until the decode in flight has emitted its audio; re-raise its error (``raise_error``)."""
        decoding, self._decoding = self._decoding, None
        if decoding is None:
            return
        if raise_error:
            decoding.result()
        else:
            futures_wait([decoding])

    def _decode_job(self, batch, slots, decode: list[int], frame: torch.Tensor) -> tuple:
        """What :meth:`_run_decode` needs for the sessions ``decode`` (indices into ``batch``) whose newest frame
        is ``frame`` (one row each): made in the engine's thread, where the slots cannot move meanwhile."""
        dslots = [slots[i] for i in decode]
        size, rows = self._rows(dslots)
        frames = torch.full(
            (size, self.config.n_q), self.config.silence_id, dtype=torch.long, device=self.device
        )
        frames[: len(decode)] = frame
        # read now: the engine's thread steps on while this decodes
        last = [batch[i].tracker.ended for i in decode]
        return [batch[i] for i in decode], last, frames, rows

    def _run_decode(self, sessions: list[EngineSession], last: list[bool], frames, rows) -> None:
        """Decode one frame of each of ``sessions`` and send or hold their audio; ``last``: whether it is the
        session's last frame (as it was when the frame was stepped). In the decode thread this runs while the
        engine's thread steps the next tick: the decode graph touches only decoder state, and nothing here reads
        what the engine's thread changes meanwhile."""
        st = self.state
        if rows is None:
            pcm = st.commit_decode(self.runner.decode(st.decode_inputs(frames)))
        else:
            outputs = self.runner.decode(st.decode_inputs_rows(frames, rows))
            pcm = st.commit_decode_rows(outputs, rows, len(sessions))
        self.decodes += 1
        audio = pcm[: len(sessions)].float().cpu().numpy()
        now = time.monotonic()
        for j, s in enumerate(sessions):
            if s.audio_t0 is None:
                s.audio_t0 = now
                loaded = self.tick_s >= s.policy.prebuffer_tick_s
                held = loaded or s.answer_paced_by_input
                s.hold_frames = s.policy.prebuffer_frames if held else 1
            s.audio_frames += 1
            if s.audio_frames <= s.hold_frames:
                s._held.append(audio[j].copy())
                if s.audio_frames == s.hold_frames or last[j]:
                    s.flush_held()
            else:
                s.emit("audio", audio[j].copy())
            if last[j]:
                s.finished = True
                s.emit("done", None)
        if self.on_decoded is not None:
            self.on_decoded()


class TickTrace:
    """One JSON line per tick, for finding what limits capacity: ``S2S_ENGINE_TRACE=PREFIX`` writes
    ``PREFIX.<pid>.jsonl`` (one file per engine, so per worker process).

    Fields: ``t`` (s, ``time.perf_counter()`` at the tick's start), ``batch`` (sessions stepped), ``answering`` (of them,
    those whose input has ended), ``live`` (sessions holding a slot), ``tick_ms`` (the engine thread's time for
    the tick, decode hand-off included), ``ahead`` (answering sessions whose audio is more than 0.5 s ahead of
    real time).
    """

    def __init__(self, path: str) -> None:
        self.file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - the engine's lifetime

    @classmethod
    def from_env(cls) -> TickTrace | None:
        import os

        prefix = os.environ.get("S2S_ENGINE_TRACE")
        return cls(f"{prefix}.{os.getpid()}.jsonl") if prefix else None

    def tick(self, t0: float, batch, frames, engine: Engine) -> None:
        import json

        now = time.monotonic()
        ahead = sum(
            1
            for s in batch
            if s.answer_t0 is not None and s.answer_steps * s.frame_s - (now - s.answer_t0) > 0.5
        )
        line = {
            "t": round(t0, 4),
            "batch": len(batch),
            "answering": sum(1 for _, ended in frames if ended),
            "live": len(engine.live),
            "tick_ms": round((time.perf_counter() - t0) * 1e3, 3),
            "ahead": ahead,
        }
        self.file.write(json.dumps(line) + "\n")


def _ort_version() -> str:
    try:
        import onnxruntime

        return onnxruntime.__version__
    except ModuleNotFoundError:
        return "none"
