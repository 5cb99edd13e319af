"""The stage runner: small named stages, each a pure function of manifests in and a manifest out (NeMo SDP style).

A :class:`Stage` names its input stages, its parameters and a ``process`` function applied to one *unit* (all
records of one recording) in a worker process. The runner

- groups the inputs by unit and runs the units over a process pool with a progress bar;
- appends each finished unit to ``units.jsonl`` (keyed by a digest of the unit's input records, the parameters and the
  stage version), so an interrupted stage resumes where it stopped and a rerun recomputes only the units whose
  inputs or parameters changed;
- skips a stage whose inputs, parameters and version are those of its last complete run (``stage.json``);
- records a unit that raises as an error (the source named, the message kept) and goes on without it;
- optionally ``reduce``s all records in the main process (global steps: duplicate removal);
- writes ``manifest.jsonl`` atomically and ``stage.json`` (counts, hours in and out, wall and CPU seconds, errors).
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .manifest import Record, digest, hours, read_jsonl, write_jsonl

Unit = dict[str, list[Record]]


@dataclass(frozen=True)
class Context:
    """Where a stage may read and write: ``root`` is the collection folder, ``work`` its ``work/`` folder."""

    root: Path
    stage_dir: Path

    @property
    def work(self) -> Path:
        return self.root / "work"

    def path(self, rel: str) -> Path:
        return self.root / rel


@dataclass(frozen=True)
class Stage:
    """One named step. ``process(unit, params, ctx) -> records`` must be a module-level (picklable) function whose
    output depends only on its arguments; ``unit`` maps each input stage's name to that unit's records."""

    name: str
    inputs: tuple[str, ...]
    process: Callable[[Unit, dict, Context], list[Record]]
    version: int = 1
    parallel: bool = True
    reduce: Callable[[list[Record], dict, Context], list[Record]] | None = None
    summarize: Callable[[list[Record], list[Record], dict], dict] | None = None
    unit_key: str = "recording_id"
    description: str = ""


@dataclass
class StageResult:
    name: str
    records: list[Record]
    info: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False


def _unit_of(rec: Record, key: str) -> str:
    return str(rec.get(key) or rec.get("id"))


def group_units(inputs: dict[str, list[Record]], order: tuple[str, ...], key: str) -> dict[str, Unit]:
    """Units in the order of the first input; other inputs contribute their records of the same unit."""
    units: dict[str, Unit] = {}
    for rec in inputs[order[0]]:
        units.setdefault(_unit_of(rec, key), {name: [] for name in order})[order[0]].append(rec)
    for name in order[1:]:
        for rec in inputs[name]:
            u = units.get(_unit_of(rec, key))
            if u is not None:
                u[name].append(rec)
    return units


def _run_unit(
    stage: Stage, unit: Unit, params: dict, ctx: Context
) -> tuple[list[Record] | None, str | None, float]:
    t0 = time.process_time()
    try:
        return stage.process(unit, params, ctx), None, time.process_time() - t0
    except Exception as exc:  # noqa: BLE001 - one bad source is reported and skipped
        where = next((r.get("path") or r.get("id") for recs in unit.values() for r in recs), "?")
        msg = f"{where}: {type(exc).__name__}: {exc}"
        if os.environ.get("S2S_BENCH_COLLECT_TRACEBACK"):
            msg += "\n" + traceback.format_exc()
        return None, msg, time.process_time() - t0


def _pool_init() -> None:
    """Workers use one thread each: the pool is the parallelism (2 cores = 2 workers, not 2 x N threads)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"


def worker_pool(workers: int) -> ProcessPoolExecutor | None:
    """A pool of ``workers`` processes kept for a whole run, so each loads its models once (None for 0: in-process).

    Workers start from a fork server (not a fork of the caller, which may hold threads of torch or onnxruntime)."""
    if workers <= 0:
        return None
    import multiprocessing as mp

    return ProcessPoolExecutor(
        max_workers=workers, mp_context=mp.get_context("forkserver"), initializer=_pool_init
    )


def run_stage(
    stage: Stage,
    inputs: dict[str, list[Record]],
    params: dict,
    root: Path,
    stage_dir: Path,
    *,
    pool: ProcessPoolExecutor | None = None,
    progress: bool = True,
    force: bool = False,
) -> StageResult:
    """Run (or reuse) one stage; see the module docstring."""
    from tqdm.auto import tqdm

    stage_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(root, stage_dir)
    input_digest = digest({name: inputs[name] for name in stage.inputs})
    run_key = digest([stage.name, stage.version, params, input_digest])
    info_path, manifest_path = stage_dir / "stage.json", stage_dir / "manifest.jsonl"
    if not force and info_path.exists() and manifest_path.exists():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        if info.get("run_key") == run_key:
            return StageResult(stage.name, read_jsonl(manifest_path), info, skipped=True)

    t0 = time.perf_counter()
    units = group_units(inputs, stage.inputs, stage.unit_key)
    keys = {u: digest([stage.name, stage.version, params, unit]) for u, unit in units.items()}
    log_path = stage_dir / "units.jsonl"
    done: dict[str, dict] = {}
    if log_path.exists() and not force:
        for line in log_path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: that unit is recomputed
            if keys.get(entry.get("unit")) == entry.get("key"):
                done[entry["unit"]] = entry
    else:
        log_path.unlink(missing_ok=True)
    todo = [u for u in units if u not in done]
    cpu_s = 0.0
    bar = tqdm(total=len(units), initial=len(units) - len(todo), desc=f"{stage.name:<10}", unit="rec",
               disable=not progress, dynamic_ncols=True)  # fmt: skip
    with open(log_path, "a", encoding="utf-8") as log:

        def finish(u: str, result: tuple) -> None:
            nonlocal cpu_s
            records, error, cpu = result
            cpu_s += cpu
            entry = {"unit": u, "key": keys[u], "records": records, "error": error}
            log.write(json.dumps(entry, ensure_ascii=False) + "\n")
            log.flush()
            done[u] = entry
            bar.update(1)

        if stage.parallel and pool is not None and len(todo) > 1:
            pending = {pool.submit(_run_unit, stage, units[u], params, ctx): u for u in todo}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    finish(pending.pop(fut), fut.result())
        else:
            for u in todo:
                finish(u, _run_unit(stage, units[u], params, ctx))
    bar.close()
    records: list[Record] = []
    errors = []
    for u in units:
        entry = done[u]
        if entry["error"]:
            errors.append({"unit": u, "error": entry["error"]})
        else:
            records.extend(entry["records"])
    if units and len(errors) == len(units):
        raise RuntimeError(
            f"stage {stage.name!r} failed on every one of its {len(units)} recordings, so the problem is not one bad "
            f"source; the first error: {errors[0]['error']}"
        )
    if stage.reduce is not None:
        records = stage.reduce(records, params, ctx)
    main_in = inputs[stage.inputs[0]]
    info: dict[str, Any] = {
        "stage": stage.name,
        "description": stage.description,
        "version": stage.version,
        "params": params,
        "run_key": run_key,
        "input_digest": input_digest,
        "units": len(units),
        "units_reused": len(units) - len(todo),
        "records_in": len(main_in),
        "records_out": len(records),
        "hours_in": round(hours(main_in), 6),
        "hours_out": round(hours(records), 6),
        "wall_s": round(time.perf_counter() - t0, 3),
        "cpu_s": round(cpu_s, 3),
        "workers": pool._max_workers if stage.parallel and pool is not None else 0,
        "errors": errors,
    }
    if stage.summarize is not None:
        info.update(stage.summarize(main_in, records, params))
    write_jsonl(manifest_path, records)
    info_path.write_text(json.dumps(info, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return StageResult(stage.name, records, info)
