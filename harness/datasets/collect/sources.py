"""The ``ingest`` stage: what to collect, as recording records with their provenance.

A source is one of

- a media file (mp4, mkv, webm, mp3, m4a, opus, ogg, aac, wav, flac) or a folder of them (searched recursively);
  a ``downloads.jsonl`` written by ``s2s-bench data collect download`` in the folder, or a yt-dlp ``X.info.json``
  beside a file, supplies title, channel, licence and URL;
- ``hf:PATH``: a local Hugging Face ``datasets`` folder, either saved with ``save_to_disk`` or an ``audiofolder``
  (audio files plus ``metadata.csv``/``metadata.jsonl``). Audio embedded as bytes is written out once under
  ``work/sources/``; nothing is downloaded. A folder holding ``dataset_info.json``, ``state.json``,
  ``dataset_dict.json`` or an audiofolder ``metadata.*`` is taken as ``hf:`` without the prefix.

A recording's id is a slug of its name plus the first 10 hex digits of the file's SHA-256, so the same bytes at two
paths are one recording (the first found; ``also_at`` lists the others). Its split (train/dev/test) is a
hash of its channel when known, else of its id, so a channel's recordings never straddle splits.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ..build import split_of
from .manifest import Record

MEDIA_EXTS = (".mp4", ".mkv", ".webm", ".mp3", ".m4a", ".opus", ".ogg", ".aac", ".wav", ".flac", ".mov")
HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
METADATA_FILES = ("metadata.csv", "metadata.jsonl")
DOWNLOADS = "downloads.jsonl"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def slug(name: str, n: int = 40) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
    return s[:n] or "rec"


def _is_hf_folder(path: Path) -> bool:
    return any((path / m).exists() for m in HF_MARKERS + METADATA_FILES)


def _download_metadata(folder: Path) -> dict[str, dict]:
    """File path (resolved) -> download record, from every ``downloads.jsonl`` under ``folder``."""
    out = {}
    for listing in folder.rglob(DOWNLOADS):
        for line in listing.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("status") == "ok" and rec.get("file"):
                out[str((listing.parent / rec["file"]).resolve())] = rec
    return out


def _info_json(path: Path) -> dict:
    for cand in (path.with_suffix(".info.json"), Path(str(path) + ".info.json")):
        if cand.exists():
            try:
                return json.loads(cand.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                return {}
    return {}


def _media_record(path: Path, meta: dict, problems: list[dict]) -> Record | None:
    try:
        sha = file_sha256(path)
    except OSError as exc:
        problems.append({"source": str(path), "error": f"cannot read: {exc}"})
        return None
    rec: Record = {
        "id": f"{slug(path.stem)}-{sha[:10]}",
        "kind": "file",
        "path": str(path.resolve()),
        "source_sha256": sha,
        "size_bytes": path.stat().st_size,
        "source": meta.get("source")
        or (
            f"downloaded from {meta['webpage_url']}" if meta.get("webpage_url") else f"local file {path.name}"
        ),
    }
    for key, alts in (("title", ("title",)), ("channel", ("channel", "uploader")), ("license", ("license",)),
                      ("url", ("webpage_url", "url", "original_url"))):  # fmt: skip
        for alt in alts:
            if meta.get(alt):
                rec[key] = str(meta[alt])
                break
    if meta.get("kind"):
        rec["kind"] = meta["kind"]
    declared = _container_duration(path)
    if declared is not None:
        rec["duration_s"] = declared
    return rec


def _container_duration(path: Path) -> float | None:
    """The duration the container declares (seconds), or None; decoding finds the true one."""
    try:
        import av

        with av.open(str(path)) as c:
            return round(c.duration / 1e6, 3) if c.duration else None
    except Exception:  # noqa: BLE001 - a file PyAV cannot open is reported by the decode stage
        return None


def _hf_records(folder: Path, work: Path, problems: list[dict]) -> list[Record]:
    try:
        import datasets
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "hf: sources need the 'datasets' package: pip install 's2s-bench[collect]'"
        ) from None
    if not any((folder / m).exists() for m in HF_MARKERS):
        return _audiofolder_records(folder, problems)
    loaded = datasets.load_from_disk(str(folder))
    splits = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [("train", loaded)]
    out: list[Record] = []
    name = slug(folder.name, 24)
    for split_name, ds in splits:
        audio_cols = [c for c, f in ds.features.items() if isinstance(f, datasets.Audio)]
        if not audio_cols:
            problems.append({"source": f"hf:{folder}", "error": f"split {split_name!r} has no Audio column"})
            continue
        col = audio_cols[0]
        ds = ds.cast_column(col, datasets.Audio(decode=False))
        for i, row in enumerate(ds):
            audio = row[col] or {}
            src_path = audio.get("path")
            if audio.get("bytes"):
                suffix = Path(src_path).suffix if src_path and Path(src_path).suffix else ".wav"
                path = work / "sources" / name / f"{split_name}-{i:07d}{suffix}"
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(audio["bytes"])
            elif src_path and Path(src_path).exists():
                path = Path(src_path)
            else:
                problems.append(
                    {"source": f"hf:{folder}[{split_name}][{i}]", "error": "row has no audio bytes or file"}
                )
                continue
            meta = {k: v for k, v in row.items() if k != col and isinstance(v, (str, int, float, bool))}
            rec = _media_record(path, {"license": meta.get("license"), "channel": meta.get("speaker") or meta.get("channel"),
                                       "source": f"hf:{folder} {split_name}[{i}]", "kind": "hf"}, problems)  # fmt: skip
            if rec is not None:
                rec["hf_row"] = {"dataset": str(folder), "split": split_name, "index": i, **meta}
                out.append(rec)
    return out


def _audiofolder_records(folder: Path, problems: list[dict]) -> list[Record]:
    """An ``audiofolder`` read as ``datasets`` documents it (``metadata.csv`` or ``metadata.jsonl`` with a
    ``file_name`` column, paths relative to the file), without ``datasets``' loader, whose audio casting needs
    torchcodec."""
    import csv

    out = []
    for meta_path in sorted(p for name in METADATA_FILES for p in folder.rglob(name)):
        if meta_path.suffix == ".csv":
            with open(meta_path, encoding="utf-8", newline="") as fh:
                rows = list(csv.DictReader(fh))
        else:
            rows = [
                json.loads(line)
                for line in meta_path.read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
        for i, row in enumerate(rows):
            name = row.get("file_name")
            path = meta_path.parent / name if name else None
            if path is None or not path.is_file():
                problems.append(
                    {"source": f"hf:{meta_path}[{i}]", "error": f"file_name {name!r} is not a file"}
                )
                continue
            meta = {
                k: v for k, v in row.items() if k != "file_name" and isinstance(v, (str, int, float, bool))
            }
            rec = _media_record(path, {"license": meta.get("license"), "channel": meta.get("speaker") or meta.get("channel"),
                                       "source": f"hf:{folder} {name}", "kind": "hf"}, problems)  # fmt: skip
            if rec is not None:
                rec["hf_row"] = {"dataset": str(folder), "split": "train", "index": i, **meta}
                out.append(rec)
    return out


def collect_sources(
    specs: list[str], work: Path, dev_pct: int = 5, test_pct: int = 5
) -> tuple[list[Record], list[dict]]:
    """Recording records for the sources, and the problems found (a missing path, an unreadable file)."""
    problems: list[dict] = []
    found: list[Record] = []
    for spec in specs:
        is_hf = spec.startswith("hf:")
        path = Path(spec[3:] if is_hf else spec).expanduser()
        if not path.exists():
            problems.append({"source": spec, "error": "no such file or folder"})
            continue
        if is_hf or (path.is_dir() and _is_hf_folder(path)):
            try:
                found += _hf_records(path, work, problems)
            except Exception as exc:  # noqa: BLE001 - a broken dataset folder is one bad source
                problems.append(
                    {
                        "source": spec,
                        "error": f"cannot load as a datasets folder: {type(exc).__name__}: {exc}",
                    }
                )
            continue
        files = (
            [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix.lower() in MEDIA_EXTS)
        )
        downloads = _download_metadata(path if path.is_dir() else path.parent)
        if not files:
            problems.append({"source": spec, "error": f"no media files ({', '.join(MEDIA_EXTS)})"})
        for f in files:
            meta = downloads.get(str(f.resolve())) or _info_json(f)
            if meta and "kind" not in meta:
                meta = {**meta, "kind": "download"}
            rec = _media_record(f, meta, problems)
            if rec is not None:
                found.append(rec)
    by_sha: dict[str, Record] = {}
    for rec in found:
        if rec["source_sha256"] in by_sha:
            by_sha[rec["source_sha256"]].setdefault("also_at", []).append(rec["path"])
            continue
        rec["split"] = split_of(rec.get("channel") or rec["id"], dev_pct=dev_pct, test_pct=test_pct)
        by_sha[rec["source_sha256"]] = rec
    return list(by_sha.values()), problems


def source_summary(records: list[Record]) -> dict[str, Any]:
    """Counts by kind and licence (for the data card)."""
    kinds: dict[str, int] = {}
    licences: dict[str, int] = {}
    for r in records:
        kinds[r.get("kind", "file")] = kinds.get(r.get("kind", "file"), 0) + 1
        lic = r.get("license") or "unknown"
        licences[lic] = licences.get(lic, 0) + 1
    return {"kinds": kinds, "licenses": licences}
