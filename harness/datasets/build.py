"""Build synthetic Telugu sets into a cache folder with a checksummed JSONL manifest.

A build is a list of :class:`Job` (one manifest line each; a question -> answer job speaks two texts). Jobs are
synthesised in chunks on ``workers`` threads (espeak-ng forks a child per utterance, festival runs one process per
chunk), written as 16-bit PCM WAV, and listed in job order, so two builds give byte-identical audio and manifests.
The build goes to ``<dir>.partial`` and is renamed into place when complete; ``build.json`` beside the manifest
records the recipe (a changed recipe or text makes the cache stale) and what the build produced.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .identity import build_identity
from .speakers import SAMPLE_RATE, Speaker, synthesize_many

MANIFEST = "manifest.jsonl"
BUILD_INFO = "build.json"
CHUNK = {"espeak": 16, "festival": 48}


def default_cache_root() -> Path:
    """``$S2S_BENCH_CACHE/data`` if set, else ``~/.cache/s2s-bench/data``."""
    root = os.environ.get("S2S_BENCH_CACHE") or "~/.cache/s2s-bench"
    return Path(root).expanduser() / "data"


def dataset_dir(name: str, cache: str | Path | None = None) -> Path:
    """Where set ``name`` is built: ``<cache>/<name>`` (``cache`` defaults to :func:`default_cache_root`)."""
    return (Path(cache).expanduser() if cache else default_cache_root()) / name


@dataclass(frozen=True)
class Part:
    """One utterance to synthesise: ``rel_path`` is relative to the set's folder."""

    speaker: Speaker
    text: str
    seed: int
    rel_path: str


@dataclass
class Job:
    """One manifest line: the input utterance plus, for conversational pairs, the response utterance."""

    id: str
    split: str
    input: Part
    response: Part | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def parts(self) -> list[Part]:
        return [self.input] if self.response is None else [self.input, self.response]


def stable_seed(*keys: object) -> int:
    """A 31-bit seed from the keys (stable across processes and Python versions)."""
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, keys)).encode()).digest()[:4], "little") >> 1


def split_of(text: str, dev_pct: int = 15, test_pct: int = 15) -> str:
    """Train/dev/test by a hash of the text, so a text keeps its split when others are added."""
    bucket = stable_seed("split", text) % 100
    return "test" if bucket < test_pct else "dev" if bucket < test_pct + dev_pct else "train"


def _pcm16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def _write_wav(path: Path, x: np.ndarray) -> tuple[str, float]:
    """Write 16-bit PCM at 16 kHz; return (sha256 of the file, duration in seconds)."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = _pcm16(x)
    sf.write(str(path), pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return hashlib.sha256(path.read_bytes()).hexdigest(), pcm.size / SAMPLE_RATE


def _run_chunk(speaker: Speaker, parts: list[Part], root: Path) -> list[tuple[Part, dict | Exception]]:
    audio = synthesize_many(speaker, [(p.text, p.seed) for p in parts])
    out = []
    for part, x in zip(parts, audio, strict=True):
        if isinstance(x, Exception):
            out.append((part, x))
        elif x.size == 0 or not np.any(x):
            out.append((part, RuntimeError(f"{speaker.name} produced no audio for {part.text!r}")))
        else:
            sha, dur = _write_wav(root / part.rel_path, x)
            out.append((part, {"sha256": sha, "duration": dur}))
    return out


def synthesize_jobs(
    jobs: list[Job], root: Path, workers: int = 2, progress: Callable[[int], None] | None = None
) -> dict[str, dict | Exception]:
    """Synthesise every part of ``jobs`` under ``root``; ``rel_path`` -> {sha256, duration} or the error."""
    by_speaker: dict[str, list[Part]] = {}
    speakers: dict[str, Speaker] = {}
    for job in jobs:
        for part in job.parts():
            by_speaker.setdefault(part.speaker.name, []).append(part)
            speakers[part.speaker.name] = part.speaker
    chunks = []
    for name, parts in by_speaker.items():
        size = CHUNK[speakers[name].engine]
        chunks += [(speakers[name], parts[i : i + size]) for i in range(0, len(parts), size)]
    chunks.sort(key=lambda c: c[0].engine != "festival")  # start the slow engine first
    results: dict[str, dict | Exception] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done in pool.map(lambda c: _run_chunk(c[0], c[1], root), chunks):
            for part, res in done:
                results[part.rel_path] = res
            if progress:
                progress(len(done))
    return results


def job_record(job: Job, results: dict[str, dict | Exception]) -> dict[str, Any] | str:
    """The manifest line for ``job``, or the reason it failed."""
    for part in job.parts():
        res = results.get(part.rel_path)
        if not isinstance(res, dict):
            return f"{part.speaker.name}: {res}"
    inp = results[job.input.rel_path]
    rec: dict[str, Any] = {
        "id": job.id,
        "audio": job.input.rel_path,
        "sample_rate": SAMPLE_RATE,
        "duration": inp["duration"],
        "text": job.input.text,
    }
    if job.response is not None:
        resp = results[job.response.rel_path]
        rec.update(
            response_text=job.response.text,
            response_audio=job.response.rel_path,
            response_sha256=resp["sha256"],
            response_speaker=job.response.speaker.name,
            response_duration=resp["duration"],
        )
    rec.update(
        speaker=job.input.speaker.name,
        language="te",
        split=job.split,
        source=job.input.speaker.source,
        license=job.input.speaker.license,
        sha256=inp["sha256"],
    )
    rec.update(job.extra)
    return rec


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Utterances, hours and speakers, overall and per split."""
    out: dict[str, Any] = {
        "utterances": len(records),
        "hours": round(sum(r["duration"] for r in records) / 3600, 4),
    }
    splits: dict[str, Any] = {}
    for split in sorted({r["split"] for r in records}):
        rs = [r for r in records if r["split"] == split]
        splits[split] = {
            "utterances": len(rs),
            "hours": round(sum(r["duration"] for r in rs) / 3600, 4),
            "speakers": sorted({r["speaker"] for r in rs}),
            "texts": len({r["text"] for r in rs}),
        }
    out["splits"] = splits
    return out


def recipe_hash(recipe: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def is_current(out_dir: Path, recipe: dict[str, Any]) -> bool:
    info = out_dir / BUILD_INFO
    if not (out_dir / MANIFEST).exists() or not info.exists():
        return False
    try:
        return json.loads(info.read_text(encoding="utf-8")).get("recipe_hash") == recipe_hash(recipe)
    except (OSError, json.JSONDecodeError):
        return False


def ensure_built(
    name: str,
    out_dir: Path,
    recipe: dict[str, Any],
    make_batches: Callable[[], Iterator[list[Job]]],
    *,
    force: bool = False,
    **build_options: Any,
) -> Path:
    """Return ``out_dir/manifest.jsonl``, building it first when missing, stale (recipe changed) or ``force``.

    A lock file beside the folder makes concurrent callers (two test workers, two runs) wait for one build.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out_dir.with_name(out_dir.name + ".lock")
    with open(lock_path, "a+") as lock:
        try:
            import fcntl

            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        except ImportError:  # Windows: no advisory lock; builds still land atomically
            pass
        if not force and is_current(out_dir, recipe):
            return out_dir / MANIFEST
        return build_set(name, make_batches(), out_dir, recipe, **build_options)


def build_set(
    name: str,
    job_batches: Iterator[list[Job]],
    out_dir: Path,
    recipe: dict[str, Any],
    *,
    workers: int = 2,
    progress: bool = True,
    target_hours: float | None = None,
    total_parts: int | None = None,
    reference_voices: list[str] | None = None,
    why_missing: dict[str, str] | None = None,
) -> Path:
    """Synthesise batches of jobs into ``out_dir`` (via ``out_dir.partial``); return the manifest path.

    With ``target_hours`` batches are taken until the input audio reaches it, and the set is cut at the first job
    (in job order) that reaches it, so the result does not depend on scheduling. ``build.json`` records the
    set's identity (:mod:`.identity`): a build without one of ``reference_voices`` is ``degraded``, and says so.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    partial = out_dir.with_name(out_dir.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    bar_total = int(target_hours * 3600) if target_hours else total_parts
    unit = "s" if target_hours else "utt"
    fmt = "{l_bar}{bar}| {n:.0f}/{total:.0f} " + unit + " [{elapsed}<{remaining}]"
    bar = tqdm(
        total=bar_total, desc=f"building {name}", bar_format=fmt, disable=not progress, dynamic_ncols=True
    )
    records: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    hours_so_far = 0.0
    try:
        for batch in job_batches:
            tick = None if target_hours else bar.update
            results = synthesize_jobs(batch, partial, workers=workers, progress=tick)
            for job in batch:
                rec = job_record(job, results)
                if isinstance(rec, str):
                    failed.append({"id": job.id, "reason": rec})
                    continue
                if target_hours and hours_so_far >= target_hours:
                    for part in job.parts():  # beyond the cut: drop its audio
                        (partial / part.rel_path).unlink(missing_ok=True)
                    continue
                records.append(rec)
                hours_so_far += rec["duration"] / 3600
                if target_hours:
                    bar.update(min(rec["duration"], max(0.0, bar_total - bar.n)))
            if target_hours and hours_so_far >= target_hours:
                break
    finally:
        bar.close()
    if not records:
        raise RuntimeError(f"building {name} produced no audio; first failures: {failed[:3]}")
    with open(partial / MANIFEST, "w", encoding="utf-8", newline="\n") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    identity = build_identity(name, partial / MANIFEST, records, reference_voices, failed, why_missing)
    info = {
        "name": name,
        "recipe": recipe,
        "recipe_hash": recipe_hash(recipe),
        "identity": identity,
        **summarize(records),
        "failed": failed,
        "build_seconds": round(time.perf_counter() - t0, 1),
        "workers": workers,
    }
    (partial / BUILD_INFO).write_text(json.dumps(info, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(partial, out_dir)
    if identity["degraded"]:
        print(
            f"WARNING: {name} was built DEGRADED: {identity['degraded_reason']}. It holds other utterances than "
            "the reference set, so runs on it cannot be compared with runs on machines that have every voice. "
            "Fix: scripts/install-system-deps.sh (as root), then `s2s-bench data build "
            f"{name} --force`.",
            file=sys.stderr,
        )
    return out_dir / MANIFEST
