"""JSONL manifests of the collection pipeline: one record (a dict) a line, written atomically, hashed for caching.

Three kinds of record flow through the stages (after lhotse's Recording / SupervisionSegment / Cut):

- a **recording**: one source media file (``id``, ``path``, provenance: ``title``, ``channel``, ``license``, ``url``,
  ``source``; after decoding ``audio``, the 16 kHz mono WAV under the work folder, and ``duration_s``);
- a **segment** / **clip**: a span ``start_s``..``end_s`` (seconds) of a recording, carrying the recording's
  provenance, plus what later stages measured (speaker, quality, duplicate, transcript);
- a **pair**: two clips of one recording, a turn of one speaker then another speaker's turn, with ``gap_s``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Record = dict[str, Any]

PROVENANCE = (
    "recording_id",
    "audio",
    "gain_db",
    "split",
    "source",
    "path",
    "url",
    "title",
    "channel",
    "license",
)
"""Recording fields every segment, clip and pair carries, so each line says where it came from."""


def read_jsonl(path: str | Path) -> list[Record]:
    path = Path(path)
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return out


def write_jsonl(path: str | Path, records: Iterable[Record]) -> Path:
    """Write records to ``path`` through a temporary file, so a crash never leaves half a manifest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def digest(obj: Any) -> str:
    """Short SHA-256 of a JSON-serialisable object (keys sorted): the cache key of inputs and parameters."""
    blob = json.dumps(obj, ensure_ascii=False, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def hours(records: Iterable[Record]) -> float:
    """Total ``duration_s`` of the records, in hours."""
    return sum(float(r.get("duration_s") or 0.0) for r in records) / 3600.0


def provenance(rec: Record) -> Record:
    """The provenance fields of a recording or segment (for copying onto what is derived from it)."""
    out = {k: rec[k] for k in PROVENANCE if k in rec and rec[k] not in (None, "")}
    if "recording_id" not in out and "id" in rec:
        out["recording_id"] = rec["id"]
    return out
