"""The runner: plays utterances to backends with honest clocks and writes the event log as it goes.

Each utterance runs in its own worker thread (``concurrency`` at once); a supervisor cuts utterances whose backend
call never returns. Input is delivered in chunks of ``chunk_ms``: in ``realtime`` pacing chunk *i* is pushed when
its last sample has been spoken (source start + end of chunk), in ``fast`` pacing as fast as the backend accepts.
While waiting for the next push the worker polls the session for output, so output produced during input is
timestamped when it appears. The end of each input's speech is found (harness.vad) before anything is timed and
written into its ``utt_start``. Definitions of every latency metric: :mod:`harness.latency`.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import secrets
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from .audio import AudioError, first_audible_sample, write_audio
from .backend import Backend, BackendSpec, Session
from .data import Utterance, check_utterances, load_utterances
from .events import EventLog, read_events
from .executors.shards import Shard, ShardError
from .executors.shards import select as select_shard
from .latency import DEFAULT_INPUT_LAG_FLAG_MS, DEFAULT_MIN_STALL_MS
from .outcome import signal_name
from .registry import create_backend
from .results import SCHEMA, git_info, machine_info, now_iso, package_versions, slug
from .run_folder import (  # noqa: F401 - RunError and check_out_dir are part of the runner's interface
    RunError,
    RunInterrupted,
    StopSignals,
    check_out_dir,
    check_resumable,
    data_identity_of_run,
    degraded_warning,
    finish_run,
    resume_state,
)
from .storage import StorageError, write_json_atomic
from .turns.endpointer import EndpointerSettings
from .vad import METHODS as VAD_METHODS
from .vad import SpeechActivity, speech_of_utterances, vad_info
from .vad import resolve_method as resolve_vad

now_ns = time.perf_counter_ns


LOAD_ALLOWANCE_S = 30.0
"""Seconds a worker may spend reading and checking its audio before the supervisor counts it as hung."""


@dataclass
class RunSettings:
    pacing: str = "realtime"
    chunk_ms: float = 20.0
    concurrency: int = 1
    timeout_s: float = 60.0
    hang_grace_s: float = 2.0
    warmup: int = 1
    min_stall_ms: float = DEFAULT_MIN_STALL_MS
    input_lag_flag_ms: float = DEFAULT_INPUT_LAG_FLAG_MS
    vad: str = "auto"
    seed: int = 0
    save_audio: bool = True
    endpointing: str = "oracle"
    """``oracle``: the harness calls ``end_input()`` at the end of the file; ``system``: it never does, the
    microphone stays open and the system decides (harness.turns.driver)."""
    tail: str = "silence"
    """endpointing=system: what the microphone hears after the file: ``silence`` or ``noise`` (a room-noise bed)."""
    tail_noise_dbfs: float = -55.0
    settle_s: float = 1.5
    """endpointing=system, backends that endpoint themselves: stop listening after this long with no output."""
    endpointer: EndpointerSettings = field(default_factory=EndpointerSettings)
    """endpointing=system: the adapter in front of backends that cannot endpoint themselves."""

    def validate(self) -> None:
        if self.pacing not in ("realtime", "fast"):
            raise RunError(f"Expected pacing to be realtime or fast but got {self.pacing!r}")
        if self.chunk_ms <= 0:
            raise RunError(f"Expected chunk_ms > 0 but got {self.chunk_ms}")
        if self.concurrency < 1:
            raise RunError(f"Expected concurrency >= 1 but got {self.concurrency}")
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise RunError(
                f"Expected timeout_s to be a finite number of seconds > 0 but got {self.timeout_s} "
                "(a hung backend is cut only after a finite timeout)"
            )
        if not math.isfinite(self.chunk_ms):
            raise RunError(f"Expected chunk_ms to be a finite number but got {self.chunk_ms}")
        if self.vad not in VAD_METHODS:
            raise RunError(f"Expected vad to be one of {', '.join(VAD_METHODS)} but got {self.vad!r}")
        try:
            resolve_vad(self.vad)
        except ModuleNotFoundError as exc:
            raise RunError(str(exc)) from None
        from .turns.driver import settings_problem

        problem = settings_problem(self)
        if problem:
            raise RunError(problem)


class _Timeout(Exception):
    pass


class _Job:
    """One attempt at one utterance on one backend, driven by a worker thread."""

    def __init__(
        self,
        key: str,
        backend: Backend,
        utt: Utterance,
        attempt: int,
        settings: RunSettings,
        log: EventLog | None,
        out_dir: Path | None,
        speech: SpeechActivity | None = None,
    ) -> None:
        self.key, self.backend, self.utt, self.attempt = key, backend, utt, attempt
        self.settings, self.log, self.out_dir, self.speech = settings, log, out_dir, speech
        self.stage = "load_audio"
        self.session: Session | None = None
        self.final = False
        self.failed = False
        self.status: str | None = None
        self.out: list[np.ndarray] = []
        self.out_sr = 0
        self._lock = threading.Lock()
        self.finished = threading.Event()
        self.hard_deadline_ns: int | None = None
        self.storage_error: StorageError | None = None
        self.redact: Callable[[str], str] = str  # scrubs a backend's secrets from failure reasons
        self.turn_log = False  # whether the log carries what turn-taking metrics need (out_activity)
        self.thread = threading.Thread(target=self._run, name=f"utt-{utt.id}", daemon=True)

    def start(self) -> None:
        """Start the worker; until it has loaded the audio, the supervisor allows ``LOAD_ALLOWANCE_S`` for that."""
        s = self.settings
        self.hard_deadline_ns = now_ns() + int((s.timeout_s + s.hang_grace_s + LOAD_ALLOWANCE_S) * 1e9)
        self.thread.start()

    def emit(self, event: dict) -> None:
        if self.log is None:
            return
        with self._lock:
            if not self.final:
                self.log.emit({"b": self.key, "u": self.utt.id, "a": self.attempt, **event})

    def finish(self, status: str, **fields) -> bool:
        """Write ``utt_end`` once; False if the supervisor already ended this attempt."""
        with self._lock:
            if self.final:
                return False
            if self.log is not None:
                self.log.emit(
                    {
                        "b": self.key,
                        "u": self.utt.id,
                        "a": self.attempt,
                        "e": "utt_end",
                        "t": now_ns(),
                        "status": status,
                        **fields,
                    }
                )
            self.final = True
            self.status = status
            self.failed = status == "failed"
            return True

    def fail(self, kind: str, reason: str) -> None:
        self.emit({"e": "error", "t": now_ns(), "kind": kind, "reason": self.redact(reason)})
        self.finish("failed")

    def cut(self, kind: str, reason: str) -> None:
        """End an attempt the harness gave up on (timeout, hang): ``truncated`` when an audible answer had started
        (its partial output is kept and saved), else ``failed``."""
        t = now_ns()
        full = np.concatenate(list(self.out)) if self.out else np.zeros(0, np.float32)
        onset = first_audible_sample(full, self.out_sr) if full.size else None
        if onset is None:
            self.emit({"e": "error", "t": t, "kind": kind, "reason": self.redact(reason)})
            self.finish("failed")
            return
        self.emit({"e": "audible", "s": onset})
        self._emit_activity(full)
        self.emit({"e": "error", "t": t, "kind": kind, "reason": self.redact(reason)})
        try:
            self._save(full)
        except Exception as exc:  # noqa: BLE001 - the measurement is in the log; only the audio is lost
            kind = "harness"
            if isinstance(exc, OSError):  # the disk refused the output: the run stops (as in _run)
                self.storage_error = StorageError(getattr(exc, "filename", None) or "the output audio", exc)
                kind = "storage"
            self.emit({"e": "error", "t": now_ns(), "kind": kind, "reason": f"saving the output: {exc}"})
        self.finish("truncated", out_samples=int(full.size))

    def _save(self, full: np.ndarray) -> None:
        if self.settings.save_audio and self.out_dir is not None and full.size:
            write_audio(self.out_dir / "outputs" / slug(self.key) / f"{self.utt.id}.wav", full, self.out_sr)

    def stop_unrecorded(self) -> None:
        """The run stops (a signal, a full disk): end this attempt unrecorded (``--resume`` redoes it)."""
        with self._lock:
            self.final = True
        if self.session is not None:
            threading.Thread(target=self._close_quietly, daemon=True).start()

    def _run(self) -> None:
        try:
            self._drive()
        except BaseException as exc:  # noqa: BLE001 - a bug in a backend must never stop the run
            kind = "harness" if self.stage == "save_output" else "crash"
            if kind == "harness" and isinstance(exc, OSError):  # the disk refused the output: the run stops
                self.storage_error = StorageError(getattr(exc, "filename", None) or "the output audio", exc)
                kind = "storage"
            self.fail(kind, f"{type(exc).__name__}: {exc} (in `{self.stage}`)")
        finally:
            if self.session is not None:
                try:
                    self.session.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
            self.finished.set()

    def _open_session(self) -> Session:
        """The backend's session; with ``endpointing=system``, behind the endpointer adapter unless the backend
        endpoints itself (harness.turns.endpointer)."""
        b = self.backend
        if self.settings.endpointing == "system" and not getattr(b, "endpoints_itself", False):
            from .turns.endpointer import EndpointedSession

            return EndpointedSession(b.open_session, self.settings.endpointer, b.input_sample_rate)
        return b.open_session()

    def _record(self, chunk, t: int) -> None:
        """Keep one polled chunk's audio and log it, its marks and its text, stamped ``t``."""
        if chunk.audio is not None:
            pcm = np.asarray(chunk.audio, dtype=np.float32)
            if pcm.ndim != 1:
                raise ValueError(f"backend returned audio of shape {pcm.shape}; expected mono (1-D)")
            if pcm.size:
                if not np.all(np.isfinite(pcm)):
                    raise ValueError(f"backend returned {int(np.sum(~np.isfinite(pcm)))} NaN/inf samples")
                self.out.append(pcm)
                self.emit({"e": "out", "t": t, "n": int(pcm.size)})
        for name in chunk.marks:
            self.emit({"e": "mark", "t": t, "name": name, **({"text": chunk.text} if chunk.text else {})})
        if chunk.text and not chunk.marks:
            self.emit({"e": "text", "t": t, "text": chunk.text})

    def _drive(self) -> None:
        s, b = self.settings, self.backend
        in_sr, out_sr = b.input_sample_rate, b.output_sample_rate
        self.out_sr = out_sr
        try:
            audio = self.utt.load_audio(in_sr)
            plan, injections = self.utt.turn_plan(in_sr) if hasattr(self.utt, "turn_plan") else (None, [])
        except AudioError as exc:
            self.fail("bad_input", str(exc))
            return
        except (OSError, ValueError) as exc:  # the speech a scenario injects cannot be read or made
            self.fail("bad_input", f"turn-taking scenario {self.utt.id}: {exc}")
            return
        self.turn_log = plan is not None or s.endpointing == "system"
        realtime = s.pacing == "realtime"
        duration_ns = int(audio.size / in_sr * 1e9)
        self.hard_deadline_ns = (
            now_ns() + (duration_ns if realtime else 0) + int((s.timeout_s + s.hang_grace_s) * 1e9)
        )
        hop = max(1, int(round(s.chunk_ms * in_sr / 1000.0)))
        self.stage = "open_session"
        session = self.session = self._open_session()
        speech = {}
        if self.speech is not None:  # found before anything was timed (run_benchmark)
            end = self.speech.speech_end_s
            speech = {
                "speech_end_s": end if end is not None else audio.size / in_sr,
                "speech_end_from": self.speech.speech_end_from,
            }
        t0 = now_ns()
        soft_deadline = t0 + (duration_ns if realtime else 0) + int(s.timeout_s * 1e9)
        self.emit(
            {
                "e": "utt_start",
                "t": t0,
                "in_sr": in_sr,
                "out_sr": out_sr,
                "in_samples": int(audio.size),
                "audio_s": audio.size / in_sr,
                **speech,
                **({"turns": plan} if plan is not None else {}),
            }
        )
        record = self._record

        if s.endpointing == "system":
            from .turns.driver import drive_system

            try:
                drive_system(self, session, audio, t0, injections, record, _Timeout)
            except _Timeout:
                self.cut("timeout", f"answer still going {s.timeout_s:g} s after the end of the file")
                return
            if not self.final:
                self._conclude()
            return

        def drain_until(due: int | None) -> None:
            """Poll for output until ``due`` (realtime) or until nothing is ready (fast)."""
            self.stage = "poll"
            while not self.final:
                t = now_ns()
                if t > soft_deadline:
                    raise _Timeout
                if due is None:
                    chunk = session.poll(0.0)
                else:
                    if t >= due:
                        return
                    chunk = session.poll((due - t) / 1e9)
                if chunk is not None:
                    record(chunk, now_ns())
                elif due is None or session.done:
                    return

        try:
            n_chunks = max(1, -(-audio.size // hop))
            input_end = t0
            for i in range(n_chunks):
                piece = audio[i * hop : (i + 1) * hop]
                drain_until(t0 + int(min((i + 1) * hop, audio.size) / in_sr * 1e9) if realtime else None)
                if self.final:
                    return
                input_end = now_ns()
                self.emit({"e": "push", "t": input_end, "n": int(piece.size)})
                self.stage = "push"
                session.push(piece)
            self.emit({"e": "input_end", "t": input_end})
            self.stage = "end_input"
            session.end_input()
            self.stage = "poll"
            while not self.final and not session.done:  # done first: never sleep in a poll once it is over
                t = now_ns()
                if t > soft_deadline:
                    raise _Timeout
                chunk = session.poll(min((soft_deadline - t) / 1e9, 0.05))
                if chunk is not None:
                    record(chunk, now_ns())
            self.emit({"e": "done", "t": now_ns()})  # the backend's work ends here (rtfx)
        except _Timeout:
            self.cut("timeout", f"output not finished within {s.timeout_s:g} s after the end of input")
            return
        if self.final:
            return
        self._conclude()

    def _conclude(self) -> None:
        """Harness work after the backend finished: the first audible sample, the output's audible segments
        (turn-taking logs), the WAV, ``utt_end``."""
        self.stage = "save_output"  # a failure from here on is not the backend's
        out_sr = self.out_sr
        full = np.concatenate(self.out) if self.out else np.zeros(0, np.float32)
        onset = first_audible_sample(full, out_sr)
        self.emit({"e": "audible", "s": onset})
        self._emit_activity(full)
        self._save(full)
        self.finish("ok" if onset is not None else "no_answer", out_samples=int(full.size))

    def _emit_activity(self, full: np.ndarray) -> None:
        if self.turn_log:
            from .turns.timeline import output_activity

            segments = output_activity(full, self.out_sr) if full.size else []
            self.emit({"e": "out_activity", "segments": [list(seg) for seg in segments]})

    def abandon(self) -> None:
        """The supervisor gives up on a backend call that never returned."""
        s = self.settings
        if self.stage == "load_audio":
            reason = f"reading the audio took more than {LOAD_ALLOWANCE_S:g} s"
        else:
            allowed = "the input's duration + " if s.pacing == "realtime" else ""
            reason = (
                f"backend call `{self.stage}` did not return within {allowed}{s.timeout_s:g} s timeout "
                f"+ {s.hang_grace_s:g} s grace; session abandoned"
            )
        if self.stage == "load_audio":
            self.fail("hang", reason)
        else:
            self.cut("hang", reason)
        if self.session is not None:
            threading.Thread(target=self._close_quietly, daemon=True).start()

    def _close_quietly(self) -> None:
        try:
            self.session.close()
        except Exception:  # noqa: BLE001
            pass


def _execute(blocks: Sequence[Sequence[_Job]], concurrency: int, on_done: Callable[[_Job], None]) -> None:
    """Run blocks one after the other; within a block keep ``concurrency`` jobs going.

    If the run stops (a signal, ``on_done`` raising on a full disk), the attempts still going are cut unrecorded.
    """
    active: list[_Job] = []
    try:
        for block in blocks:
            pending = deque(block)
            while pending or active:
                while pending and len(active) < concurrency:
                    job = pending.popleft()
                    job.start()
                    active.append(job)
                time.sleep(0.005)
                t = now_ns()
                for job in list(active):
                    if job.finished.is_set():
                        active.remove(job)
                        on_done(job)
                    elif t > job.hard_deadline_ns:
                        job.abandon()
                        active.remove(job)
                        on_done(job)
    except BaseException:
        for job in active:
            job.stop_unrecorded()
        raise


def _prepare_backend(spec: BackendSpec) -> tuple[str, Backend | None, str | None]:
    backend = create_backend(spec)  # option errors are usage errors: raised before anything runs
    try:
        backend.load()
        backend.warmup()
    except Exception as exc:  # noqa: BLE001 - a backend that cannot load fails its utterances, the run goes on
        return spec.key, None, spec.redact(f"{type(exc).__name__}: {exc}")
    return spec.key, backend, None


def run_benchmark(
    backends: Sequence[str | BackendSpec],
    data: str = "synthetic-clips",
    *,
    split: str | None = None,
    limit: int | None = None,
    pacing: str = "realtime",
    chunk_ms: float = 20.0,
    concurrency: int = 1,
    timeout_s: float = 60.0,
    warmup: int = 1,
    min_stall_ms: float = DEFAULT_MIN_STALL_MS,
    input_lag_flag_ms: float = DEFAULT_INPUT_LAG_FLAG_MS,
    vad: str = "auto",
    seed: int = 0,
    out: str | Path | None = None,
    suite: str = "latency",
    resume: bool = False,
    retry_failed: bool | Collection[str] = False,
    strict_data: bool = False,
    save_audio: bool = True,
    progress: bool = True,
    utterances: Sequence[Utterance] | None = None,
    endpointing: str = "oracle",
    tail: str = "silence",
    tail_noise_dbfs: float = -55.0,
    settle_s: float = 1.5,
    endpointer: EndpointerSettings | None = None,
    shard: str | Shard | None = None,
    alternate: bool = False,
) -> Path:
    """Measure ``backends`` on ``data`` and return the run folder (see docs/run-format.md).

    Backends are loaded and warmed up, and the end of every input's speech is found (``vad``: auto, silero or
    energy; harness.vad), before anything is timed. With several backends, utterances are interleaved in blocks
    of ``concurrency`` (A B A B ...) so slow drift of the machine hits every backend alike; ``alternate`` reverses
    the order in every other block (A B, B A, ...) so that no backend always runs right after another one
    (``s2s-bench gate --against`` measures its two sides this way).

    ``shard`` (``"I/N"``) measures only shard I of N of the data's utterances (harness.executors.shards: the same
    set on every machine); run.json's ``data`` stays the whole selection's and ``shard`` records the part, for
    ``s2s-bench merge``. ``resume`` continues the run in ``out``; ``retry_failed`` (which implies it) also redoes utterances whose last
    attempt is not ``ok``: all of them (``True``) or those with one of the given statuses or error kinds
    (``{"load", "hang"}``). ``strict_data`` refuses a degraded built-in set (one of its voices missing).
    ``endpointing="system"`` never tells a backend that the user's turn is over: the microphone keeps streaming
    (the file, then ``tail``) and backends that cannot endpoint themselves get the ``endpointer`` adapter
    (harness.turns); run.json records both.
    Raises :class:`RunError` for usage errors (nothing measured),
    :class:`~harness.results.StorageError` when the run's files cannot be written (the run stops, run.json says
    ``failed``), and ``KeyboardInterrupt`` / :class:`RunInterrupted` on a signal (run.json says ``interrupted``).
    """
    settings = RunSettings(
        pacing,
        chunk_ms,
        concurrency,
        timeout_s,
        warmup=warmup,
        min_stall_ms=min_stall_ms,
        input_lag_flag_ms=input_lag_flag_ms,
        vad=vad,
        seed=seed,
        save_audio=save_audio,
        endpointing=endpointing,
        tail=tail,
        tail_noise_dbfs=tail_noise_dbfs,
        settle_s=settle_s,
        endpointer=endpointer or EndpointerSettings(),
    )
    settings.validate()
    resume = resume or bool(retry_failed)
    if not backends:
        raise RunError("No backend given: pass at least one NAME[:key=value,...]")
    parsed = [BackendSpec.parse(b) for b in backends]
    specs = [p.key for p in parsed]
    if len(set(specs)) != len(specs):
        raise RunError(f"A backend is given twice: {specs}")
    out_dir = (
        Path(out)
        if out
        else Path("runs") / (datetime.now().strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3))
    )
    created = not out_dir.exists()
    check_out_dir(out_dir, resume)  # before the data: a bad --out must not wait for a data set to build
    try:
        utts = list(utterances) if utterances is not None else load_utterances(data, split=split, limit=limit)
        if not utts:
            raise RunError(f"No utterances in {data!r} (split={split}, limit={limit})")
        try:
            check_utterances(utts, data)
        except ValueError as exc:
            raise RunError(str(exc)) from None
        data_id = data_identity_of_run(data, split, limit, utts)
        if data_id.get("identity", {}).get("degraded"):
            if strict_data:
                raise RunError(
                    degraded_warning(data_id["identity"]) + " Refused: --strict-data (without it, or with "
                    "`make bench BENCH_ALLOW_DEGRADED=1`, the set is measured and labelled degraded)"
                )
            print(f"WARNING: {degraded_warning(data_id['identity'])}", file=sys.stderr)
        shard_info = None
        if shard is not None:  # after the data identity: every shard records the whole selection's
            try:
                utts, shard_info = select_shard(utts, shard)
            except ShardError as exc:
                raise RunError(str(exc)) from None
    except BaseException:
        if created:  # nothing was measured: leave no empty run folder behind
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    events_path, meta_path = out_dir / "events.jsonl", out_dir / "run.json"
    here = machine_info()
    meta = {
        "schema": SCHEMA,
        "run_id": out_dir.name,
        "created": now_iso(),
        "status": "running",
        "pid": os.getpid(),
        "suite": suite,
        "data": data_id,
        "settings": asdict(settings),
        "vad": vad_info(vad),
        **({"endpointer": settings.endpointer.describe()} if endpointing == "system" else {}),
        "machine": here,
        "versions": package_versions(),
        "git": git_info(),
        "backends": [],
        "summary": {},
    }
    if shard_info is not None:
        meta["shard"] = shard_info
    done: set[tuple[str, str]] = set()
    attempts: dict[tuple[str, str], int] = {}
    if events_path.exists() and events_path.stat().st_size:
        if not resume:
            raise RunError(
                f"{out_dir} already holds a run; pass --resume to continue it or choose another --out"
            )
        meta = check_resumable(meta_path, meta, specs)
        done, attempts = resume_state(read_events(events_path), retry_failed)
        meta["status"] = "running"
        meta["pid"] = os.getpid()
        meta.pop("error", None)
    random.seed(seed)
    np.random.seed(seed)
    speech = speech_of_utterances(utts, vad, progress=progress)  # untimed, cached by the audio's checksum

    secrets_of = {p.key: p for p in parsed}
    with StopSignals() as stop_signals:
        loaded: list[tuple[str, Backend | None, str | None]] = [_prepare_backend(p) for p in parsed]
        if (
            not done
        ):  # again, now that backends have loaded: torch's view of the CPU and the GPU need torch imported
            meta["machine"] = machine_info()
        meta["backends"] = [
            {
                "key": key,
                **(b.describe() if b else {"name": BackendSpec.parse(key).name}),
                **({"load_error": err} if err else {}),
                **({"endpointing": _endpointing_of(b)} if b and endpointing == "system" else {}),
            }
            for key, b, err in loaded
        ]
        try:
            write_json_atomic(meta_path, meta)
            log = EventLog(events_path)
        except StorageError:
            _shutdown(loaded)
            raise
        except OSError as exc:
            _shutdown(loaded)
            raise StorageError(events_path, exc) from None
        bar = _progress(0, False)
        try:
            # Each start or resume names its machine: a shard resumed elsewhere says where each part ran.
            log.emit(
                {
                    "e": "run",
                    "t": now_ns(),
                    "settings": asdict(settings),
                    "resume": bool(done),
                    "machine": here,
                }
            )

            def new_job(key: str, backend: Backend, utt: Utterance) -> _Job:
                attempts[(key, utt.id)] = attempts.get((key, utt.id), 0) + 1
                job = _Job(
                    key, backend, utt, attempts[(key, utt.id)], settings, log, out_dir, speech.get(utt.id)
                )
                job.redact = secrets_of[key].redact
                return job

            # Harness warm-up: the shortest utterance, unlogged, through the same code path.
            shortest = min(utts, key=lambda u: u.duration_s or 0.0)
            for key, backend, _ in loaded:
                if backend is not None:
                    warm_settings = replace(
                        settings, endpointing="oracle"
                    )  # warm-up is about first-call costs
                    warm = [_Job(key, backend, shortest, 0, warm_settings, None, None) for _ in range(warmup)]
                    _execute([warm], 1, lambda job: None)

            for key, backend, err in loaded:
                if backend is None:
                    for u in utts:
                        if (key, u.id) not in done:
                            job = new_job(key, None, u)  # type: ignore[arg-type]
                            job.fail("load", f"backend could not be loaded: {err}")
                            done.add((key, u.id))
            log.flush()
            blocks: list[list[_Job]] = []
            live = [(key, b) for key, b, _ in loaded if b is not None]
            step = len(utts) if len(live) == 1 else concurrency
            for start in range(0, len(utts), step):
                flip = alternate and (start // step) % 2 == 1  # A B, B A, ...: none always goes first
                for key, backend in reversed(live) if flip else live:
                    block = [
                        new_job(key, backend, u)
                        for u in utts[start : start + step]
                        if (key, u.id) not in done
                    ]
                    if block:
                        blocks.append(block)

            total = sum(len(b) for b in blocks)
            bar = _progress(total, progress)
            failed = 0

            def on_done(job: _Job) -> None:
                nonlocal failed
                failed += job.failed
                log.flush()  # a finished utterance is on disk before the next one starts
                if job.storage_error is not None:
                    raise job.storage_error
                bar.update(1)
                bar.set_postfix(failed=failed, refresh=False)

            _execute(blocks, concurrency, on_done)
            meta["status"] = "complete"
        except KeyboardInterrupt as exc:
            meta["status"] = "interrupted"
            meta["interrupted_by"] = signal_name(getattr(exc, "signum", signal.SIGINT))
            raise
        except StorageError as exc:
            meta["status"], meta["error"] = "failed", str(exc)
            raise
        except BaseException as exc:
            meta["status"], meta["error"] = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            stop_signals.finishing = True  # a second Ctrl-C must not cut run.json short
            bar.close()
            finish_run(meta, meta_path, events_path, log)
            stop_signals.finishing = False
            _shutdown(loaded)
    return out_dir


def _endpointing_of(backend: Backend) -> str:
    """Who decides that the user's turn is over when the harness does not say (endpointing=system)."""
    return "itself" if getattr(backend, "endpoints_itself", False) else "endpointer adapter"


def _shutdown(loaded: list[tuple[str, Backend | None, str | None]]) -> None:
    for _, backend, _ in loaded:
        if backend is not None:
            try:
                backend.shutdown()
            except Exception:  # noqa: BLE001
                pass


class _NoBar:
    def update(self, n: int) -> None: ...
    def set_postfix(self, **kw) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="utt", desc="measuring", dynamic_ncols=True)
