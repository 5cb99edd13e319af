"""Baselines and candidates on disk, as the gate reads and writes them: run folders and compact baseline JSON.

A baseline is a run folder (or its ``run.json``) or the compact JSON of :func:`save_baseline` (schema
``s2s-bench.baseline/1``: the run's metadata, summaries and every per-utterance sample); a candidate is a run folder.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from .report.runs import RunData, RunFormatError, load_run_folder

BASELINE_SCHEMA = "s2s-bench.baseline/1"


class GateUsageError(ValueError):
    """A rule, baseline or option the gate cannot use; the message names it (exit code 2)."""


def load_baseline(path: str | Path) -> RunData:
    """A run folder (or its ``run.json``) or a compact baseline JSON written by :func:`save_baseline`."""
    path = Path(path)
    if not path.exists():
        raise GateUsageError(f"Baseline {path} does not exist (a run folder or a baseline .json)")
    if path.is_file() and path.name == "run.json":
        path = path.parent
    if path.is_dir():
        try:
            return load_run_folder(path)
        except RunFormatError as exc:
            raise GateUsageError(str(exc)) from None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GateUsageError(f"Baseline {path} is not valid JSON ({exc})") from None
    if doc.get("schema") != BASELINE_SCHEMA:
        raise GateUsageError(
            f"Baseline {path}: expected schema {BASELINE_SCHEMA} but got {doc.get('schema')!r}"
        )
    return RunData(source=str(path), meta=doc["run"], samples=doc["samples"], status=doc.get("status", {}))


def load_candidate(path: str | Path) -> RunData:
    """A candidate must be a run folder."""
    path = Path(path)
    if path.is_file() and path.name == "run.json":
        path = path.parent
    if not path.is_dir():
        raise GateUsageError(f"Candidate {path} is not a run folder")
    try:
        return load_run_folder(path)
    except RunFormatError as exc:
        raise GateUsageError(str(exc)) from None


def save_baseline(run: RunData, out: str | Path) -> Path:
    """Write the compact baseline JSON: run metadata, summaries and every per-utterance sample."""
    keep = (
        "run_id",
        "created",
        "status",
        "suite",
        "data",
        "settings",
        "machine",
        "versions",
        "git",
        "backends",
        "summary",
    )
    doc = {
        "schema": BASELINE_SCHEMA,
        "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_run": run.source,
        "run": {k: run.meta[k] for k in keep if k in run.meta},
        "samples": run.samples,
        "status": run.status,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return out
