"""The Ray executor: ``s2s-bench run --executor ray[:ADDRESS]`` and ``s2s-bench score run --executor ray[:ADDRESS]``.

``run``: every backend's utterances are cut into shards (:mod:`harness.executors.shards`); each (backend, shard)
is one Ray task that runs in a fresh worker process (``max_calls=1``: nothing a backend leaves behind, a stuck
thread or a GPU cache, reaches the next task), loads that one backend and measures its shard with the ordinary
runner (:mod:`harness.executors.ray_worker`). Tasks get the resources asked for their backend
(``--ray-resources custom:num_gpus=1``; default one CPU), so Ray places a GPU backend on a GPU node.

The driver (this process) receives each task's events as they are written and keeps each shard as an ordinary
shard run folder under ``OUT/shards/<backend>/<I>-of-<N>/``: events.jsonl grows line by line, each output WAV
arrives before the line that ends its utterance, run.json as the worker writes it. When a worker dies (the
process killed, its node lost, the out-of-memory killer), nothing that arrived is lost: the shard is sent again,
with what it has so far, to another worker, which resumes it (finished utterances kept, the one in flight redone
as a new attempt), at most ``--ray-retries`` times. A task that fails for another reason (the data cannot be
loaded there, a usage error) is not retried: its error is reported. When every shard is complete, the shards are
merged into ``OUT`` exactly as ``s2s-bench merge`` does (:mod:`harness.executors.merge`). Each shard's run.json
``executor`` records every worker it ran on (pid, host, Ray node, and how it ended).

``score run``: the run folder's utterances are cut into shards the same way and each shard is scored by a Ray
task (``--ray-resources score:...``) that reads the run folder, which must be on a file system the workers see;
Ray retries a task whose worker died (scoring measures nothing, so it simply starts again). The results are
written by the same code as a local ``score run``.

Ray is imported only here, and only when this executor is used.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..results import now_iso, slug
from ..storage import write_json_atomic
from . import RAY_EXTRA, RayOptions
from .shards import sizes, split_ids

SYSTEM_FAILURES = (
    "WorkerCrashedError",
    "NodeDiedError",
    "LocalRayletDiedError",
    "ActorDiedError",
    "ActorUnavailableError",
    "ObjectLostError",
    "OwnerDiedError",
    "ObjectReconstructionFailedError",
    "ObjectFetchTimedOutError",
    "OutOfMemoryError",
    "RaySystemError",
)
"""Ray errors that mean a worker, its node or its objects were lost (not the task's own error): retried."""
_END = object()


class ShardsFailed(Exception):
    """Some shards could not be finished (their workers kept dying, or a worker raised); what they measured is
    kept under ``OUT/shards`` and ``--resume`` continues them."""


def import_ray():
    """Ray, or a usage error naming the extra to install."""
    from ..run_folder import RunError

    try:
        import ray
    except ModuleNotFoundError:
        raise RunError(f"--executor ray needs Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


def connect(ray, address: str | None) -> None:
    """Join the cluster at ``address`` (``auto``, ``HOST:PORT``, ``ray://HOST:10001``), or the one ``RAY_ADDRESS``
    names, or start a local one; a process already connected (a test's cluster) stays connected."""
    if ray.is_initialized():
        return
    ray.init(address=address, include_dashboard=False, configure_logging=False)


def _fit(ray, resources: dict, n_backends: int) -> int:
    """How many shards of one backend the cluster can run at once, when every backend gets an equal share."""
    total = ray.cluster_resources()
    asked = {"CPU": resources.get("num_cpus", 1), "GPU": resources.get("num_gpus", 0)}
    if resources.get("memory"):
        asked["memory"] = resources["memory"]
    asked.update(resources.get("resources") or {})
    slots = [int(total.get(name, 0) // need) for name, need in asked.items() if need]
    return max(1, min(slots or [1]) // max(1, n_backends))


def _is_system_failure(exc: BaseException) -> bool:
    return any(
        type(c).__name__ in SYSTEM_FAILURES for c in (exc, getattr(exc, "cause", None)) if c is not None
    )


@dataclass
class _Shard:
    """The driver's view of one (backend, shard): its folder and the workers it has had."""

    key: str
    spec: str
    index: int
    count: int
    folder: Path
    resources: dict
    size: int
    workers: list[dict] = field(default_factory=list)
    done: bool = False
    error: str | None = None
    events_file: object | None = None

    @property
    def label(self) -> str:
        return f"{self.key} shard {self.index}/{self.count}"

    def prior(self) -> tuple[dict | None, bytes | None]:
        meta_path, events_path = self.folder / "run.json", self.folder / "events.jsonl"
        if not meta_path.exists():
            return None, None
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        data = events_path.read_bytes() if events_path.exists() else b""
        if data and not data.endswith(b"\n"):  # only whole lines are ever written here; be safe anyway
            data = data[: data.rfind(b"\n") + 1]
        return meta, data

    def record_meta(self, meta: dict, run_id: str) -> None:
        meta = {**meta, "run_id": run_id, "executor": {"kind": "ray", "workers": self.workers}}
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.folder / "run.json", meta)

    def append(self, lines: list[str]) -> None:
        if self.events_file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.events_file = open(self.folder / "events.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self.events_file.write("".join(line + "\n" for line in lines))
        self.events_file.flush()

    def write_output(self, rel: str, data: bytes) -> None:
        parts = Path(rel).parts
        if not parts or parts[0] != "outputs" or ".." in parts or Path(rel).is_absolute():
            raise ValueError(f"a worker sent an output outside outputs/: {rel!r}")
        dest = self.folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        partial.write_bytes(data)
        os.replace(partial, dest)

    def close(self) -> None:
        if self.events_file is not None:
            self.events_file.close()
            self.events_file = None


def _check_out(out_dir: Path, resume: bool) -> None:
    from ..run_folder import RunError, check_out_dir

    if (out_dir / "shards").is_dir():
        if not resume:
            raise RunError(
                f"--out {out_dir} already holds a Ray run's shards; pass --resume to continue it or choose another --out"
            )
        return
    check_out_dir(out_dir, resume)
    if (out_dir / "run.json").exists():
        raise RunError(
            f"--out {out_dir} holds a run that was not made by the Ray executor; choose another --out"
        )


def run_on_ray(
    backends: Sequence[str],
    data: str = "synthetic-clips",
    *,
    options: RayOptions,
    out: str | Path | None = None,
    split: str | None = None,
    limit: int | None = None,
    resume: bool = False,
    retry_failed=False,
    progress: bool = True,
    on_message: Callable[[_Shard, dict], None] | None = None,
    **run_kwargs,
) -> Path:
    """Measure ``backends`` on ``data`` on a Ray cluster and return the merged run folder (see the module doc).

    ``run_kwargs`` are :func:`harness.runner.run_benchmark`'s measuring settings (pacing, chunk_ms, concurrency,
    timeout_s, warmup, vad, seed, suite, strict_data, save_audio, ...). ``on_message(shard, message)`` is called on
    the driver for every message a worker sends (after it is written down). Raises ``RunError`` for usage errors
    (nothing measured), :class:`ShardsFailed` when a shard could not be finished (what it measured is kept).
    """
    from ..backend import BackendSpec
    from ..data import check_utterances, load_utterances
    from ..registry import create_backend
    from ..run_folder import RunError
    from ..runner import RunSettings

    settings_keys = set(RunSettings.__dataclass_fields__) - {"save_audio"}
    RunSettings(**{k: v for k, v in run_kwargs.items() if k in settings_keys}).validate()
    if not backends:
        raise RunError("No backend given: pass at least one NAME[:key=value,...]")
    parsed = [BackendSpec.parse(b) for b in backends]
    keys = [p.key for p in parsed]
    if len(set(keys)) != len(keys):
        raise RunError(f"A backend is given twice: {keys}")
    for p in parsed:
        create_backend(p)  # option errors are usage errors: raised before any worker starts
    if options.shards is not None and options.shards < 1:
        raise RunError(f"Expected --shards to be >= 1 but got {options.shards}")
    out_dir = (
        Path(out)
        if out
        else Path("runs") / (datetime.now().strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3))
    )
    _check_out(out_dir, resume)
    try:
        utts = load_utterances(data, split=split, limit=limit)
        check_utterances(utts, data)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    if not utts:
        raise RunError(f"No utterances in {data!r} (split={split}, limit={limit})")
    ray = import_ray()
    connect(ray, options.address)

    shards: list[_Shard] = []
    for p, text in zip(parsed, backends, strict=True):
        resources = options.resources_for(p.key, p.name)
        count = min(options.shards or _fit(ray, resources, len(parsed)), len(utts))
        for index, size in enumerate(sizes(len(utts), count)):
            folder = out_dir / "shards" / slug(p.key) / f"{index}-of-{count}"
            shards.append(_Shard(p.key, str(text), index, count, folder, resources, size))
    if resume:
        _check_resume_layout(out_dir, shards)
    job = {
        "data": data,
        "split": split,
        "limit": limit,
        "retry_failed": retry_failed,
        **run_kwargs,
    }
    _drive(ray, shards, job, out_dir, options, progress, on_message, bool(retry_failed))
    failed = [s for s in shards if s.error]
    if failed:
        lines = "\n".join(f"  - {s.label}: {s.error}" for s in failed)
        raise ShardsFailed(
            f"{len(failed)} of {len(shards)} shard(s) could not be finished:\n{lines}\nWhat they measured is kept "
            f"in {out_dir}/shards; continue with the same command and --resume --out {out_dir}"
        )
    from .merge import MergeError, merge_runs

    try:
        merge_runs([s.folder for s in shards], out_dir, replace=True)
    except MergeError as exc:
        raise ShardsFailed(f"the shards measured on the cluster do not make one run: {exc}") from None
    return out_dir


def _check_resume_layout(out_dir: Path, shards: list[_Shard]) -> None:
    from ..run_folder import RunError

    expected = {s.folder.resolve() for s in shards}
    found = {p.resolve() for p in (out_dir / "shards").glob("*/*") if p.is_dir()}
    if found - expected:
        raise RunError(
            f"Cannot resume {out_dir}: it holds shards of another layout ({', '.join(sorted(str(p) for p in found - expected)[:3])}); "
            "resume with the same backends and --shards as the first run"
        )


def _finished(shard: _Shard) -> bool:
    """A shard folder from an earlier (resumed) Ray run that needs no more work."""
    meta, _ = shard.prior()
    return bool(meta) and meta.get("status") == "complete"


def _drive(ray, shards, job, out_dir, options, progress, on_message, retry_failed) -> None:
    """Submit every shard, write what their workers stream back, resubmit a shard whose worker died."""
    from .ray_worker import run_shard

    task = ray.remote(max_calls=1)(run_shard)  # a fresh worker process per shard
    messages: queue.Queue = queue.Queue()
    running: dict[int, object] = {}

    def consume(shard: _Shard, gen) -> None:
        try:
            for ref in gen:
                messages.put((shard, ray.get(ref), None))
        except BaseException as exc:  # noqa: BLE001 - handed to the driver's loop
            messages.put((shard, None, exc))
            return
        messages.put((shard, None, _END))

    def submit(shard: _Shard) -> None:
        prior_meta, prior_events = shard.prior()
        shard.workers.append({"attempt": len(shard.workers) + 1, "submitted": now_iso()})
        gen = task.options(
            num_returns="streaming",
            max_retries=0,  # the driver resumes a dead worker's shard itself, from what it has received
            name=f"s2s-bench {shard.label}",
            **shard.resources,
        ).remote(
            {**job, "backends": [shard.spec], "shard": f"{shard.index}/{shard.count}"},
            prior_meta,
            prior_events,
        )
        running[id(shard)] = gen
        threading.Thread(target=consume, args=(shard, gen), daemon=True, name=f"ray-{shard.label}").start()

    todo = [s for s in shards if retry_failed or not _finished(s)]
    for s in shards:
        if s not in todo:
            s.done = True
    from ..run_folder import StopSignals

    bar = _progress(sum(s.size for s in todo), progress)
    seen: set[tuple[str, str]] = set()
    try:
        with StopSignals():  # SIGTERM and SIGHUP stop the driver as Ctrl-C does
            for s in todo:
                submit(s)
            pending = len(todo)
            while pending:
                shard, msg, exc = messages.get()
                if exc is None and msg is not None:
                    _handle(shard, msg, out_dir, bar, seen)
                    if on_message is not None:
                        on_message(shard, msg)
                    continue
                running.pop(id(shard), None)
                pending -= _ended(shard, exc, options, submit)
                _record(shard, out_dir)
                shard.close()
    except BaseException:
        for gen in running.values():
            with contextlib.suppress(Exception):
                ray.cancel(gen, force=True)
        for s in shards:
            s.close()
            _record(s, out_dir, interrupted=not s.done)
        raise
    finally:
        bar.close()


def _ended(shard: _Shard, exc, options: RayOptions, submit) -> int:
    """A shard's task ended (``exc``: ``_END`` when it finished); 1 when the shard is over, 0 when resubmitted."""
    worker = shard.workers[-1]
    worker["ended"] = now_iso()
    if exc is _END:
        worker["end"] = "finished"
        shard.done = True
        return 1
    if not _is_system_failure(exc):
        worker["end"] = f"failed: {type(exc).__name__}"
        shard.error = _task_error(exc)
        return 1
    first_line = (str(exc).splitlines() or [""])[0]
    worker["end"] = f"died: {type(exc).__name__}: {first_line}"
    if len(shard.workers) > options.retries:
        shard.error = f"its worker died {len(shard.workers)} times (last: {worker['end']})"
        return 1
    print(
        f"s2s-bench run: {shard.label}: worker {worker.get('pid')} on {worker.get('hostname')} died "
        f"({type(exc).__name__}); its {_finished_count(shard)} finished utterance(s) are kept, resuming the rest "
        f"on another worker (attempt {len(shard.workers) + 1} of {options.retries + 1})",
        file=sys.stderr,
    )
    shard.close()
    submit(shard)
    return 0


def _handle(shard: _Shard, msg: dict, out_dir: Path, bar, seen: set) -> None:
    kind = msg.get("kind")
    if kind == "started":
        shard.workers[-1].update({k: msg.get(k) for k in ("pid", "hostname", "node_id")}, started=now_iso())
    elif kind == "meta":
        shard.record_meta(msg["meta"], _run_id(shard, out_dir))
    elif kind == "output":
        shard.write_output(msg["path"], msg["data"])
    elif kind == "events":
        shard.append(msg["lines"])
        for line in msg["lines"]:
            if '"utt_end"' in line:
                with contextlib.suppress(ValueError):
                    ev = json.loads(line)
                    if ev.get("e") == "utt_end" and (ev["b"], ev["u"]) not in seen:
                        seen.add((ev["b"], ev["u"]))
                        bar.update(1)


def _run_id(shard: _Shard, out_dir: Path) -> str:
    return f"{out_dir.name}.{slug(shard.key)}.{shard.index}-of-{shard.count}"


def _finished_count(shard: _Shard) -> int:
    from ..events import read_events
    from ..latency import final_attempts

    return len(final_attempts(read_events(shard.folder / "events.jsonl")))


def _record(shard: _Shard, out_dir: Path, interrupted: bool = False) -> None:
    """Rewrite the shard's run.json with its workers, and (when it did not end) the status that says so."""
    meta, _ = shard.prior()
    if meta is None:
        return
    if interrupted and meta.get("status") == "running":
        meta["status"] = "interrupted"
        meta["interrupted_by"] = "the driver was stopped"
    elif shard.error and meta.get("status") == "running":
        meta["status"], meta["error"] = "failed", shard.error
    if meta.get("status") != "complete":
        from ..events import read_events
        from ..latency import summarize

        meta["summary"] = summarize(read_events(shard.folder / "events.jsonl"))
    shard.record_meta(meta, _run_id(shard, out_dir))


def _task_error(exc: BaseException) -> str:
    """The worker's own exception, without Ray's traceback framing."""
    cause = getattr(exc, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"


class _NoBar:
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="utt", desc="measuring on Ray", dynamic_ncols=True)


# ------------------------------------------------------------------------------------------------ scoring


def score_on_ray(
    run_dir: str | Path,
    metrics,
    judge: str | None,
    target: str,
    workers: int,
    options: RayOptions,
) -> dict:
    """``score run`` on Ray: shards of the run's utterances scored by Ray tasks, written as a local score run
    writes them; returns the per-backend aggregates."""
    from ..metrics import get_metrics
    from ..metrics.scoring import _read_run, write_scores
    from .ray_worker import score_shard

    if judge is not None and not isinstance(judge, str):
        raise ValueError("score run on Ray takes the ASR judge as a spec (whisper:path=...), not an object")
    run_dir = Path(run_dir).resolve()
    names = [m.name for m in get_metrics(metrics)]
    _, final = _read_run(run_dir)
    ids: list[str] = []
    for per in final.values():
        ids += [u for u in per if u not in ids]
    ray = import_ray()
    connect(ray, options.address)
    resources = options.resources_for("score", "score")
    groups = [g for g in split_ids(ids, options.shards or _fit(ray, resources, 1)) if g]
    t_start = time.perf_counter()
    task = ray.remote(max_calls=1)(score_shard).options(
        max_retries=options.retries, retry_exceptions=False, **resources
    )
    refs = [task.remote(str(run_dir), names, judge, target, workers, g) for g in groups]
    parts = ray.get(refs)
    scored = {
        "metrics": names,
        "results": {},
        "transcripts": {},
        "audio_s": 0.0,
        "judge_info": None,
        "executor": {
            "kind": "ray",
            "shards": len(groups),
            "workers": [p["worker"] for p in parts],
        },
    }
    for part in parts:
        for key, per in part["results"].items():
            scored["results"].setdefault(key, {}).update(per)
        for key, per in part["transcripts"].items():
            scored["transcripts"].setdefault(key, {}).update(per)
        scored["audio_s"] += part["audio_s"]
        scored["judge_info"] = scored["judge_info"] or part["judge_info"]
    return write_scores(run_dir, scored, target, workers, time.perf_counter() - t_start)
