"""``s2s-bench merge``: shard run folders into one run folder that rescores, reports and gates like any other.

What merge checks, before it writes anything (every problem is listed, with what to do):

- each input is an s2s-bench run made with ``--shard I/N``, whose status is ``complete`` and whose every utterance
  has finished on every backend (else: which are missing, and the ``--resume`` that finishes them);
- all inputs were made the same way: the same suite, settings, data (name, split, limit, the ids with their audio
  checksums, the data set's identity), VAD (method, version, parameters), s2s-bench version and git commit;
- per backend: the same name, options, sample rates and flags in every shard that measured it; its shards are
  ``I/N`` for a single N, each index exactly once (a missing index is named), with the sizes the partition gives
  them, and each utterance sits in the shard the partition (:mod:`harness.executors.shards`) puts it in: the
  shards are disjoint and together hold every utterance of the data selection.

What it writes into ``--out``:

- ``events.jsonl``: each shard's events, shard after shard, each block opened by a ``shard`` line (index, count,
  run id, source folder, backends). Times are the harness's monotonic clock of the machine that measured them,
  so each segment of a shard's log (what one process measured, from one ``run`` line to the next) is moved by a
  constant offset to begin 1 s after the previous segment ends: differences within a segment, i.e. every
  per-utterance latency, are exactly as measured; ``rtfx`` then divides by the shards' busy time added up (the
  throughput of one worker), never by an overlap of unrelated clocks. The offsets are in run.json ``shards``.
- ``outputs/``: the shards' output audio, hard-linked where the file system allows, else copied.
- ``scores.jsonl``: quality scores of a metric that every shard scored with the same target and judge, and its
  corpus aggregate recomputed over all utterances (bootstrap intervals included); a metric only some shards have
  is left out, with a note saying how to score the merged run.
- ``run.json``: the shards' common metadata; ``summary`` recomputed from the merged log (``rescore --check``
  holds); ``shards`` (each shard's index, run id, source, status, machine, every machine it ran on, versions, git,
  clock offsets); ``machine`` is the shards' machine when they share a machine class, else
  ``{"mixed": true, "classes": [...]}``: such a run is no latency baseline or candidate (the gate says ``x`` for
  every latency rule; quality rules may compare it).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..events import read_events
from ..latency import final_attempts, summarize
from ..results import SCHEMA, machine_class, now_iso, slug
from ..storage import StorageError, write_json_atomic
from .shards import SHARD_METHOD, assign

SEGMENT_GAP_NS = 1_000_000_000
"""The gap left between two shards' (or segments') rebased clocks."""
COMPARED = ("suite", "settings", "data", "vad")
"""run.json fields that every shard must share."""
BACKEND_FIELDS = ("name", "options", "input_sample_rate", "output_sample_rate", "streaming", "latency_only")
"""A backend's record fields that must be equal in every shard that measured it."""
MERGE_OWNED = ("events.jsonl", "events.jsonl.partial", "outputs", "scores.jsonl", "shards")
"""What may already be in ``--out`` (the Ray executor's shard folders, an interrupted merge's files)."""


class MergeError(Exception):
    """The runs given cannot be merged; the message lists every problem and what to do."""


@dataclass
class ShardRun:
    """One shard's run folder, read back."""

    path: Path
    meta: dict
    events: list[dict] = field(default_factory=list)

    @property
    def shard(self) -> dict:
        return self.meta.get("shard") or {}

    @property
    def label(self) -> str:
        return f"shard {self.shard.get('index')}/{self.shard.get('count')} ({self.path})"

    @property
    def backend_keys(self) -> list[str]:
        return [b["key"] for b in self.meta.get("backends", [])]

    def machines(self) -> list[dict]:
        """Every machine this shard ran on, in order: one per ``run`` line (a resume elsewhere adds one)."""
        found = [ev["machine"] for ev in self.events if ev.get("e") == "run" and ev.get("machine")]
        return found or [self.meta.get("machine") or {}]


def read_shard(path: str | Path) -> ShardRun:
    path = Path(path)
    meta_path = path / "run.json"
    if not meta_path.exists():
        raise MergeError(f"{path} is not a run folder (no run.json)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MergeError(f"{meta_path} cannot be read ({exc})") from None
    if not str(meta.get("schema", "")).startswith("s2s-bench.run/"):
        raise MergeError(f"{meta_path}: expected schema {SCHEMA} but got {meta.get('schema')!r}")
    return ShardRun(path, meta, read_events(path / "events.jsonl"))


# ------------------------------------------------------------------------------------------------ checks


def _missing(run: ShardRun) -> dict[str, list[str]]:
    """Per backend, the shard's utterances with no finished attempt in its log."""
    finished = set(final_attempts(run.events))
    return {
        key: missing
        for key in run.backend_keys
        if (missing := [u for u in run.shard.get("ids", []) if (key, u) not in finished])
    }


def _resume_hint(run: ShardRun) -> str:
    return f"s2s-bench run ... --shard {run.shard.get('index')}/{run.shard.get('count')} --resume --out {run.path}"


def _ids_list(ids: list[str], at_most: int = 5) -> str:
    return ", ".join(ids[:at_most]) + (f" and {len(ids) - at_most} more" if len(ids) > at_most else "")


def check_shards(runs: Sequence[ShardRun]) -> list[str]:
    """Every reason these runs cannot be merged into one (empty when they can); see the module docstring."""
    problems: list[str] = []
    if not runs:
        return ["no run folder given"]
    sharded = [r for r in runs if r.shard]
    for r in runs:
        if not r.shard:
            problems.append(
                f"{r.path} was not run with --shard I/N (it has no `shard` in run.json); merge joins shards of one "
                "run: s2s-bench run ... --shard I/N"
            )
    seen_paths: dict[Path, Path] = {}
    for r in runs:
        real = r.path.resolve()
        if real in seen_paths:
            problems.append(f"{r.path} is given twice")
        seen_paths[real] = r.path
    for r in sharded:
        status = r.meta.get("status")
        missing = _missing(r)
        if missing:
            lines = "; ".join(f"{key}: {len(ids)} ({_ids_list(ids)})" for key, ids in missing.items())
            problems.append(
                f"{r.label} is {status}, with utterances not finished: {lines}; finish it with `{_resume_hint(r)}`"
            )
        elif status != "complete":
            problems.append(f"{r.label} is {status}, not complete; finish it with `{_resume_hint(r)}`")
    if not sharded:
        return problems
    first = sharded[0]
    for r in sharded[1:]:
        for what in COMPARED:
            a, b = first.meta.get(what), r.meta.get(what)
            if a != b:
                problems.append(f"{first.label} and {r.label} differ in {what}: {_differences(a, b)}")
        for what, get in (
            ("s2s-bench version", lambda m: (m.get("versions") or {}).get("s2s-bench")),
            ("git commit", lambda m: (m.get("git") or {}).get("commit")),
        ):
            a, b = get(first.meta), get(r.meta)
            if a != b:
                problems.append(
                    f"{first.label} and {r.label} ran different code ({what} {a} vs {b}); run every shard "
                    "from one revision"
                )
    problems += _check_backends(sharded)
    problems += _check_partition(sharded)
    return problems


def _differences(a, b) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        return ", ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in keys)
    return f"{a!r} vs {b!r}"


def _check_backends(runs: Sequence[ShardRun]) -> list[str]:
    problems = []
    records: dict[str, tuple[ShardRun, dict]] = {}
    for r in runs:
        for rec in r.meta.get("backends", []):
            key = rec["key"]
            if key not in records:
                records[key] = (r, rec)
                continue
            r0, rec0 = records[key]
            diff = {f: (rec0.get(f), rec.get(f)) for f in BACKEND_FIELDS if rec0.get(f) != rec.get(f)}
            if diff:
                shown = ", ".join(f"{f} {a!r} vs {b!r}" for f, (a, b) in diff.items())
                problems.append(f"backend {key} differs between {r0.label} and {r.label}: {shown}")
    return problems


def _check_partition(runs: Sequence[ShardRun]) -> list[str]:
    """Per backend: one N, every index once, the right sizes, every utterance in its own shard, none twice.
    A problem shared by several backends (a shard folder missing: all its backends lack it) is said once."""
    found: dict[str, list[str]] = defaultdict(list)  # problem -> the backends that have it
    by_backend: dict[str, list[ShardRun]] = defaultdict(list)
    for r in runs:
        for key in r.backend_keys:
            by_backend[key].append(r)
    n_data = (runs[0].meta.get("data") or {}).get("n")
    for key, shards in by_backend.items():
        for problem in _partition_problems(shards, n_data):
            found[problem].append(key)
    return [
        f"{'backend' if len(keys) == 1 else 'backends'} {', '.join(keys)}: {problem}"
        for problem, keys in found.items()
    ]


def _partition_problems(shards: Sequence[ShardRun], n_data: int | None) -> list[str]:
    """What is wrong with one backend's shards as a partition of the data's ``n_data`` utterances."""
    methods = sorted({str(r.shard.get("method")) for r in shards})
    if methods != [SHARD_METHOD]:
        return [f"shards made with partition {methods}; this merge knows {SHARD_METHOD}"]
    counts = sorted({r.shard.get("count") for r in shards})
    if len(counts) > 1:
        return [
            f"shards of different partitions ({', '.join(f'N={c}' for c in counts)}): "
            + "; ".join(r.label for r in shards)
        ]
    count = counts[0]
    problems = []
    by_index: dict[int, list[ShardRun]] = defaultdict(list)
    for r in shards:
        by_index[r.shard.get("index")].append(r)
    for index, dupes in sorted(by_index.items()):
        if len(dupes) > 1:
            problems.append(
                f"shard {index}/{count} is given {len(dupes)} times: " + ", ".join(str(r.path) for r in dupes)
            )
    absent = [i for i in range(count) if i not in by_index]
    if absent:
        problems.append(
            f"shard(s) {', '.join(f'{i}/{count}' for i in absent)} missing (have "
            f"{', '.join(f'{i}/{count}' for i in sorted(by_index))}); run them with "
            f"`s2s-bench run ... --shard I/{count}` and pass their folders too"
        )
    all_ids = [u for r in shards for u in r.shard.get("ids", [])]
    twice = sorted(u for u, n in Counter(all_ids).items() if n > 1)
    if twice:
        problems.append(f"utterances in more than one shard: {_ids_list(twice)}")
    if problems:
        return problems
    if n_data is not None and len(all_ids) != n_data:
        return [f"the shards hold {len(all_ids)} utterances but the data selection has {n_data}"]
    expected_sizes = shards[0].shard.get("sizes") or []
    where = assign(all_ids, count)
    for r in shards:
        ids = r.shard.get("ids", [])
        if r.shard.get("sizes") != expected_sizes or len(ids) != expected_sizes[r.shard["index"]]:
            problems.append(f"{r.label} holds {len(ids)} utterances, not its share of the partition")
            continue
        foreign = [u for u in ids if where[u] != r.shard["index"]]
        if foreign:
            problems.append(f"{r.label} holds utterances of other shards: {_ids_list(foreign)}")
    return problems


# ------------------------------------------------------------------------------------------------ writing


def _rebase(events: list[dict], cursor: int) -> tuple[list[dict], list[int], int]:
    """``events`` with each segment (from one ``run`` line to the next) moved to begin at ``cursor``; returns the
    moved events, each segment's offset (ns) and where the next shard may begin."""
    segments: list[list[dict]] = []
    for ev in events:
        if ev.get("e") == "run" or not segments:
            segments.append([])
        segments[-1].append(ev)
    out, offsets = [], []
    for seg in segments:
        times = [ev["t"] for ev in seg if isinstance(ev.get("t"), int)]
        if not times:
            out += seg
            offsets.append(0)
            continue
        offset = cursor - min(times)
        offsets.append(offset)
        out += [{**ev, "t": ev["t"] + offset} if isinstance(ev.get("t"), int) else ev for ev in seg]
        cursor = max(times) + offset + SEGMENT_GAP_NS
    return out, offsets, cursor


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(src, dst)


def _check_out(out: Path, replace: bool) -> None:
    if out.exists() and not out.is_dir():
        raise MergeError(f"--out {out} is a file, not a folder")
    if not out.is_dir():
        return
    if (out / "run.json").exists() and not replace:
        raise MergeError(f"--out {out} already holds a run (run.json); choose a new or empty folder")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in (*MERGE_OWNED, "run.json"))
    if foreign:
        raise MergeError(
            f"--out {out} holds other files ({', '.join(foreign[:5])}); choose a new or empty folder"
        )


def _machine_of(runs: Sequence[ShardRun]) -> tuple[dict, list[tuple]]:
    """run.json ``machine`` of the merged run, and its machine classes."""
    classes: dict[tuple, list[str]] = {}
    hosts: list[str] = []
    first: dict = {}
    for r in runs:
        for m in r.machines():
            first = first or m
            label = f"{r.shard.get('index')}/{r.shard.get('count')} {','.join(r.backend_keys)}"
            shards = classes.setdefault(machine_class(m), [])
            if label not in shards:
                shards.append(label)
            if m.get("hostname") and m["hostname"] not in hosts:
                hosts.append(m["hostname"])
    if len(classes) == 1:
        return {**first, "hostnames": hosts}, list(classes)
    described = [
        {"cpu": cpu, "cpu_id": cpu_id, "cpu_count": n, "gpu": gpu, "shards": shards}
        for (cpu, cpu_id, n, gpu), shards in classes.items()
    ]
    mixed = {
        "mixed": True,
        "classes": described,
        "cpu": f"mixed: {len(classes)} machine classes",
        "cpu_count": None,
        "gpu": None,
        "hostnames": hosts,
    }
    return mixed, list(classes)


def _merged_backends(runs: Sequence[ShardRun]) -> tuple[list[dict], list[str]]:
    """The backend records (first shard's; fields other than the compared ones that differ are listed per shard,
    ``load_error`` per shard) and notes."""
    merged: dict[str, dict] = {}
    per_shard: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for r in runs:
        for rec in r.meta.get("backends", []):
            merged.setdefault(rec["key"], {k: v for k, v in rec.items() if k != "load_error"})
            per_shard[rec["key"]].append((f"{r.shard.get('index')}/{r.shard.get('count')}", rec))
    notes = []
    for key, rec in merged.items():
        errors = [{"shard": s, "error": x["load_error"]} for s, x in per_shard[key] if x.get("load_error")]
        if errors:
            rec["load_errors"] = errors
        others = {f for _, x in per_shard[key] for f in x} - set(BACKEND_FIELDS) - {"key", "load_error"}
        differing = {
            f: {s: x.get(f) for s, x in per_shard[key]}
            for f in sorted(others)
            if len({json.dumps(x.get(f), sort_keys=True) for _, x in per_shard[key]}) > 1
        }
        if differing:
            rec["differs_by_shard"] = differing
            notes.append(
                f"backend {key}: {', '.join(differing)} differ(s) between shards (run.json records each)"
            )
    return list(merged.values()), notes


def _merge_scores(runs: Sequence[ShardRun]) -> tuple[list[dict], dict, dict, list[dict], list[str]]:
    """(scores.jsonl lines, per-backend metric aggregates, ``scoring``, ``scoring_log``, notes) of the metrics
    every shard scored alike, re-aggregated over all utterances."""
    from ..metrics import MetricResult, aggregate, metric_registry

    notes: list[str] = []
    names = sorted({name for r in runs for name in (r.meta.get("scoring") or {})})
    if not names:
        return [], {}, {}, [], notes
    records: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        path = r.path / "scores.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        for line in lines:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and rec.get("metric") in names:
                records[rec["metric"]].append(rec)
    registry = metric_registry()
    keep_lines: list[dict] = []
    aggregates: dict[str, dict] = defaultdict(dict)
    scoring: dict = {}
    for name in names:
        how = [(r, (r.meta.get("scoring") or {}).get(name)) for r in runs]
        unscored = [r for r, h in how if h is None]
        setups = {json.dumps(h, sort_keys=True) for _, h in how if h is not None}
        if unscored or len(setups) > 1:
            why = (
                f"scored in {len(runs) - len(unscored)} of {len(runs)} shards"
                if unscored
                else "scored with different targets or judges in different shards"
            )
            notes.append(
                f"quality metric {name} not merged ({why}); score the merged run: "
                f"s2s-bench score run OUT --metrics {name}"
            )
            continue
        lines = records[name]
        have = {(rec.get("b"), rec.get("u")) for rec in lines}
        want = {(key, u) for r in runs for key in r.backend_keys for u in r.shard.get("ids", [])}
        if not want <= have:
            notes.append(
                f"quality metric {name} not merged: {len(want - have)} utterance(s) have no score (a shard was "
                f"resumed after scoring?); score the merged run: s2s-bench score run OUT --metrics {name}"
            )
            continue
        keep_lines += lines
        scoring[name] = how[0][1]
        metric = registry.get(name)
        if metric is None:
            notes.append(f"quality metric {name}: not registered here, so its corpus value is not recomputed")
            continue
        for key in sorted({rec["b"] for rec in lines}):
            results = [
                MetricResult(
                    rec.get("value"),
                    rec.get("reason"),
                    tuple(rec["stats"]) if rec.get("stats") is not None else None,
                    rec.get("detail"),
                )
                for rec in lines
                if rec.get("b") == key
            ]
            aggregates[key][name] = aggregate(metric, results)
    log = [
        {**entry, "shard": f"{r.shard.get('index')}/{r.shard.get('count')}"}
        for r in runs
        for entry in r.meta.get("scoring_log", [])
    ]
    return keep_lines, dict(aggregates), scoring, log, notes


def merge_runs(
    paths: Sequence[str | Path], out: str | Path, *, replace: bool = False
) -> tuple[Path, list[str]]:
    """Merge shard run folders ``paths`` into the run folder ``out``; returns it and notes for the user.

    Raises :class:`MergeError` listing every problem when the shards do not make one run (nothing is written),
    :class:`~harness.storage.StorageError` when ``out`` cannot be written. ``replace`` lets the Ray executor
    rewrite a merged run it made before (after a resume).
    """
    out = Path(out)
    runs = [read_shard(p) for p in paths]
    problems = check_shards(runs)
    if problems:
        raise MergeError(
            f"Cannot merge {len(runs)} run folder(s) into {out}:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    if any(r.path.resolve() == out.resolve() for r in runs):
        raise MergeError(f"--out {out} is one of the shards being merged; choose a new folder")
    _check_out(out, replace)
    runs = sorted(runs, key=lambda r: (r.backend_keys, r.shard["index"]))
    lines, aggregates, scoring, scoring_log, notes = _merge_scores(runs)
    backends, backend_notes = _merged_backends(runs)
    notes = backend_notes + notes
    machine, classes = _machine_of(runs)
    if len(classes) > 1:
        notes.append(
            f"the shards ran on {len(classes)} machine classes: latency from this run is not comparable (the "
            "gate says x for every latency rule); quality metrics may still be compared"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        if (out / "outputs").exists():
            shutil.rmtree(out / "outputs")
        events: list[dict] = []
        shard_records = []
        cursor = None
        for r in runs:
            first_t = next((ev["t"] for ev in r.events if isinstance(ev.get("t"), int)), 0)
            moved, offsets, cursor = _rebase(r.events, first_t if cursor is None else cursor)
            header = {
                "e": "shard",
                "index": r.shard["index"],
                "count": r.shard["count"],
                "run_id": r.meta.get("run_id"),
                "source": str(r.path),
                "backends": r.backend_keys,
            }
            events += [header, *moved]
            for key in r.backend_keys:
                src_dir = r.path / "outputs" / slug(key)
                for uid in r.shard.get("ids", []):
                    src = src_dir / f"{uid}.wav"
                    if src.exists():
                        _link_or_copy(src, out / "outputs" / slug(key) / src.name)
            shard_records.append(
                {
                    "index": r.shard["index"],
                    "count": r.shard["count"],
                    "n": r.shard.get("n"),
                    "backends": r.backend_keys,
                    "run_id": r.meta.get("run_id"),
                    "source": str(r.path.resolve()),
                    "status": r.meta.get("status"),
                    "created": r.meta.get("created"),
                    "finished": r.meta.get("finished"),
                    "machine": r.meta.get("machine"),
                    "machines": r.machines(),
                    "versions": r.meta.get("versions"),
                    "git": r.meta.get("git"),
                    "clock_offsets_ns": offsets,
                    **({"executor": r.meta["executor"]} if r.meta.get("executor") else {}),
                }
            )
        partial = out / "events.jsonl.partial"
        with open(partial, "w", encoding="utf-8") as fh:
            for ev in events:
                fh.write(json.dumps(ev, ensure_ascii=False, separators=(",", ":")) + "\n")
        os.replace(partial, out / "events.jsonl")
        scores_path = out / "scores.jsonl"
        if lines:
            with open(scores_path, "w", encoding="utf-8") as fh:
                for rec in lines:
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        else:
            scores_path.unlink(missing_ok=True)
    except OSError as exc:
        raise StorageError(getattr(exc, "filename", None) or out, exc) from None
    first = runs[0].meta
    summary = summarize(read_events(out / "events.jsonl"))
    for key, aggs in aggregates.items():
        summary.setdefault(key, {})["metrics"] = aggs
    versions = dict(first.get("versions") or {})
    if any((r.meta.get("versions") or {}) != versions for r in runs):
        notes.append("package versions differ between shards (run.json `shards` records each shard's)")
    meta = {
        "schema": SCHEMA,
        "run_id": out.name,
        "created": min(str(r.meta.get("created") or "") for r in runs) or now_iso(),
        "finished": max(str(r.meta.get("finished") or "") for r in runs) or None,
        "status": "complete",
        "pid": os.getpid(),
        **{k: first.get(k) for k in COMPARED},
        "machine": machine,
        "versions": versions,
        "git": first.get("git"),
        "backends": backends,
        "summary": summary,
        "shards": shard_records,
        "merged": {
            "at": now_iso(),
            "method": SHARD_METHOD,
            "machine_classes": [list(c) for c in classes],
            "notes": notes,
        },
    }
    if scoring:
        meta["scoring"] = scoring
        meta["scoring_log"] = scoring_log
    write_json_atomic(out / "run.json", meta)
    return out, notes


def mixed_machine_note(meta: dict, side: str) -> str | None:
    """Why ``meta`` (a merged run) cannot be a latency baseline or candidate, or None when it can."""
    machine = meta.get("machine") or {}
    if not machine.get("mixed"):
        return None
    classes = "; ".join(
        f"{c.get('cpu')} x{c.get('cpu_count')}, GPU {c.get('gpu') or 'none'} (shards {', '.join(c.get('shards', []))})"
        for c in machine.get("classes", [])
    )
    return (
        f"the {side} is a merged run whose shards ran on {len(machine.get('classes', []))} machine classes "
        f"({classes}): its latency is not comparable; measure latency on one machine class (quality rules may "
        "compare it)"
    )
