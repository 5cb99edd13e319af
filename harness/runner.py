"""The runner: plays utterances to backends with honest clocks and writes the event log as it goes.

Each utterance runs in its own worker thread (``concurrency`` at once); a supervisor cuts utterances whose backend
call never returns. Input is delivered in chunks of ``chunk_ms``: in ``realtime`` pacing chunk *i* is pushed when
its last sample has been spoken (source start + end of chunk), in ``fast`` pacing as fast as the backend accepts.
While waiting for the next push the worker polls the session for output, so output produced during input is
timestamped when it appears. Definitions of every latency metric: :mod:`harness.latency`.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from .audio import AudioError, first_audible_sample, write_audio
from .backend import Backend, BackendSpec, Session
from .data import Utterance, load_utterances
from .events import EventLog, read_events
from .latency import DEFAULT_MIN_STALL_MS, summarize
from .registry import create_backend
from .results import SCHEMA, git_info, machine_info, now_iso, package_versions, slug, write_json_atomic

now_ns = time.perf_counter_ns


LOAD_ALLOWANCE_S = 30.0
"""Seconds a worker may spend reading and checking its audio before the supervisor counts it as hung."""


class RunError(Exception):
    """A run cannot start (bad arguments, a folder holding another run, a resume with other settings)."""


@dataclass
class RunSettings:
    pacing: str = "realtime"
    chunk_ms: float = 20.0
    concurrency: int = 1
    timeout_s: float = 60.0
    hang_grace_s: float = 2.0
    warmup: int = 1
    min_stall_ms: float = DEFAULT_MIN_STALL_MS
    seed: int = 0
    save_audio: bool = True

    def validate(self) -> None:
        if self.pacing not in ("realtime", "fast"):
            raise RunError(f"Expected pacing to be realtime or fast but got {self.pacing!r}")
        if self.chunk_ms <= 0:
            raise RunError(f"Expected chunk_ms > 0 but got {self.chunk_ms}")
        if self.concurrency < 1:
            raise RunError(f"Expected concurrency >= 1 but got {self.concurrency}")
        if self.timeout_s <= 0:
            raise RunError(f"Expected timeout_s > 0 but got {self.timeout_s}")


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
    ) -> None:
        self.key, self.backend, self.utt, self.attempt = key, backend, utt, attempt
        self.settings, self.log, self.out_dir = settings, log, out_dir
        self.stage = "load_audio"
        self.session: Session | None = None
        self.final = False
        self.failed = False
        self._lock = threading.Lock()
        self.finished = threading.Event()
        self.hard_deadline_ns: int | None = None
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
            self.failed = status != "ok"
            return True

    def fail(self, kind: str, reason: str) -> None:
        self.emit({"e": "error", "t": now_ns(), "kind": kind, "reason": reason})
        self.finish("failed")

    def _run(self) -> None:
        try:
            self._drive()
        except BaseException as exc:  # noqa: BLE001 - a bug in a backend must never stop the run
            kind = "harness" if self.stage == "save_output" else "crash"
            self.fail(kind, f"{type(exc).__name__}: {exc} (in `{self.stage}`)")
        finally:
            if self.session is not None:
                try:
                    self.session.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
            self.finished.set()

    def _drive(self) -> None:
        s, b = self.settings, self.backend
        in_sr, out_sr = b.input_sample_rate, b.output_sample_rate
        try:
            audio = self.utt.load_audio(in_sr)
        except AudioError as exc:
            self.fail("bad_input", str(exc))
            return
        realtime = s.pacing == "realtime"
        duration_ns = int(audio.size / in_sr * 1e9)
        self.hard_deadline_ns = (
            now_ns() + (duration_ns if realtime else 0) + int((s.timeout_s + s.hang_grace_s) * 1e9)
        )
        hop = max(1, int(round(s.chunk_ms * in_sr / 1000.0)))
        self.stage = "open_session"
        session = self.session = b.open_session()
        out: list[np.ndarray] = []
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
            }
        )

        def record(chunk, t: int) -> None:
            if chunk.audio is not None:
                pcm = np.asarray(chunk.audio, dtype=np.float32)
                if pcm.ndim != 1:
                    raise ValueError(f"backend returned audio of shape {pcm.shape}; expected mono (1-D)")
                if pcm.size:
                    if not np.all(np.isfinite(pcm)):
                        raise ValueError(f"backend returned {int(np.sum(~np.isfinite(pcm)))} NaN/inf samples")
                    out.append(pcm)
                    self.emit({"e": "out", "t": t, "n": int(pcm.size)})
            for name in chunk.marks:
                self.emit({"e": "mark", "t": t, "name": name, **({"text": chunk.text} if chunk.text else {})})
            if chunk.text and not chunk.marks:
                self.emit({"e": "text", "t": t, "text": chunk.text})

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
            while not self.final:
                t = now_ns()
                if t > soft_deadline:
                    raise _Timeout
                chunk = session.poll(min((soft_deadline - t) / 1e9, 0.05))
                if chunk is not None:
                    record(chunk, now_ns())
                elif session.done:
                    break
        except _Timeout:
            self.fail("timeout", f"output not finished within {s.timeout_s:g} s after the end of input")
            return
        if self.final:
            return
        self.stage = "save_output"  # harness work from here on: a failure is not the backend's
        full = np.concatenate(out) if out else np.zeros(0, np.float32)
        onset = first_audible_sample(full, out_sr)
        self.emit({"e": "audible", "s": onset})
        if s.save_audio and self.out_dir is not None and full.size:
            write_audio(self.out_dir / "outputs" / slug(self.key) / f"{self.utt.id}.wav", full, out_sr)
        self.finish("ok", out_samples=int(full.size))

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
        self.emit({"e": "error", "t": now_ns(), "kind": "hang", "reason": reason})
        self.finish("failed")
        if self.session is not None:
            threading.Thread(target=self._close_quietly, daemon=True).start()

    def _close_quietly(self) -> None:
        try:
            self.session.close()
        except Exception:  # noqa: BLE001
            pass


def _execute(blocks: Sequence[Sequence[_Job]], concurrency: int, on_done: Callable[[_Job], None]) -> None:
    """Run blocks one after the other; within a block keep ``concurrency`` jobs going."""
    for block in blocks:
        pending, active = deque(block), []
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


def _prepare_backend(spec: str) -> tuple[str, Backend | None, str | None]:
    parsed = BackendSpec.parse(spec)
    backend = create_backend(parsed)  # option errors are usage errors: raised before anything runs
    key = str(parsed)
    try:
        backend.load()
        backend.warmup()
    except Exception as exc:  # noqa: BLE001 - a backend that cannot load fails its utterances, the run goes on
        return key, None, f"{type(exc).__name__}: {exc}"
    return key, backend, None


def _data_identity(name: str, split: str | None, limit: int | None, utts: list[Utterance]) -> dict:
    h = hashlib.sha256()
    for u in utts:
        h.update(f"{u.id}\t{u.sha256 or ''}\n".encode())
    return {"name": name, "split": split, "limit": limit, "n": len(utts), "ids_sha256": h.hexdigest()}


def run_benchmark(
    backends: Sequence[str],
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
    seed: int = 0,
    out: str | Path | None = None,
    suite: str = "latency",
    resume: bool = False,
    save_audio: bool = True,
    progress: bool = True,
    utterances: Sequence[Utterance] | None = None,
) -> Path:
    """Measure ``backends`` on ``data`` and return the run folder (see docs/run-format.md).

    Backends are loaded and warmed up before anything is timed. With several backends, utterances are interleaved
    in blocks of ``concurrency`` (A B A B ...) so slow drift of the machine hits every backend alike.
    """
    settings = RunSettings(
        pacing,
        chunk_ms,
        concurrency,
        timeout_s,
        warmup=warmup,
        min_stall_ms=min_stall_ms,
        seed=seed,
        save_audio=save_audio,
    )
    settings.validate()
    if not backends:
        raise RunError("No backend given: pass at least one NAME[:key=value,...]")
    specs = [str(BackendSpec.parse(b)) for b in backends]
    if len(set(specs)) != len(specs):
        raise RunError(f"A backend is given twice: {specs}")
    utts = list(utterances) if utterances is not None else load_utterances(data, split=split, limit=limit)
    if not utts:
        raise RunError(f"No utterances in {data!r} (split={split}, limit={limit})")
    out_dir = (
        Path(out)
        if out
        else Path("runs") / (datetime.now().strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3))
    )
    events_path, meta_path = out_dir / "events.jsonl", out_dir / "run.json"
    data_id = _data_identity(data, split, limit, utts)
    meta = {
        "schema": SCHEMA,
        "run_id": out_dir.name,
        "created": now_iso(),
        "status": "running",
        "suite": suite,
        "data": data_id,
        "settings": asdict(settings),
        "machine": machine_info(),
        "versions": package_versions(),
        "git": git_info(),
        "backends": [],
        "summary": {},
    }
    done: set[tuple[str, str]] = set()
    attempts: dict[tuple[str, str], int] = {}
    if events_path.exists() and events_path.stat().st_size:
        if not resume:
            raise RunError(
                f"{out_dir} already holds a run; pass --resume to continue it or choose another --out"
            )
        meta = _check_resumable(meta_path, meta, specs)
        for ev in read_events(events_path):
            if "u" in ev:
                key = (ev["b"], ev["u"])
                attempts[key] = max(attempts.get(key, 0), ev.get("a", 1))
                if ev["e"] == "utt_end":
                    done.add(key)
        meta["status"] = "running"
    random.seed(seed)
    np.random.seed(seed)

    loaded: list[tuple[str, Backend | None, str | None]] = [_prepare_backend(s) for s in specs]
    if (
        not done
    ):  # again, now that backends have loaded: torch's view of the CPU and the GPU need torch imported
        meta["machine"] = machine_info()
    meta["backends"] = [
        {
            "key": key,
            **(b.describe() if b else {"name": BackendSpec.parse(key).name}),
            **({"load_error": err} if err else {}),
        }
        for key, b, err in loaded
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(meta_path, meta)
    log = EventLog(events_path)
    log.emit({"e": "run", "t": now_ns(), "settings": asdict(settings), "resume": bool(done)})

    def new_job(key: str, backend: Backend, utt: Utterance) -> _Job:
        attempts[(key, utt.id)] = attempts.get((key, utt.id), 0) + 1
        return _Job(key, backend, utt, attempts[(key, utt.id)], settings, log, out_dir)

    # Harness warm-up: the shortest utterance, unlogged, through the same code path.
    shortest = min(utts, key=lambda u: u.duration_s or 0.0)
    for key, backend, _ in loaded:
        if backend is not None:
            warm = [_Job(key, backend, shortest, 0, settings, None, None) for _ in range(warmup)]
            _execute([warm], 1, lambda job: None)

    for key, backend, err in loaded:
        if backend is None:
            for u in utts:
                if (key, u.id) not in done:
                    job = new_job(key, None, u)  # type: ignore[arg-type]
                    job.fail("load", f"backend could not be loaded: {err}")
                    done.add((key, u.id))
    blocks: list[list[_Job]] = []
    live = [(key, b) for key, b, _ in loaded if b is not None]
    step = len(utts) if len(live) == 1 else concurrency
    for start in range(0, len(utts), step):
        for key, backend in live:
            block = [new_job(key, backend, u) for u in utts[start : start + step] if (key, u.id) not in done]
            if block:
                blocks.append(block)

    total = sum(len(b) for b in blocks)
    bar = _progress(total, progress)
    failed = 0

    def on_done(job: _Job) -> None:
        nonlocal failed
        failed += job.failed
        log.flush()  # a finished utterance is on disk before the next one starts
        bar.update(1)
        bar.set_postfix(failed=failed, refresh=False)

    try:
        _execute(blocks, concurrency, on_done)
        meta["status"] = "complete"
    except KeyboardInterrupt:
        meta["status"] = "interrupted"
        raise
    finally:
        bar.close()
        log.close()
        meta["summary"] = summarize(read_events(events_path))
        meta["finished"] = now_iso()
        write_json_atomic(meta_path, meta)
        for _, backend, _ in loaded:
            if backend is not None:
                try:
                    backend.shutdown()
                except Exception:  # noqa: BLE001
                    pass
    return out_dir


def _check_resumable(meta_path: Path, fresh: dict, specs: list[str]) -> dict:
    import json

    if not meta_path.exists():
        raise RunError(f"Cannot resume: {meta_path} is missing")
    old = json.loads(meta_path.read_text(encoding="utf-8"))
    old_specs = [b["key"] for b in old.get("backends", [])]
    checks = [
        ("backends", old_specs, specs),
        ("settings", old.get("settings"), fresh["settings"]),
        ("data", old.get("data"), fresh["data"]),
        ("suite", old.get("suite"), fresh["suite"]),
    ]
    for what, was, now in checks:
        if was != now:
            raise RunError(f"Cannot resume {meta_path.parent}: {what} differ (the run has {was}, now {now})")
    return old


class _NoBar:
    def update(self, n: int) -> None: ...
    def set_postfix(self, **kw) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="utt", desc="measuring", dynamic_ncols=True)
