"""The ``export`` stage: clip and pair audio, the manifests ``--data`` reads, and the ``datasets`` parquet files.

Written under the collection folder:

- ``manifest.jsonl`` + ``clips/<split>/<id>.wav``: every kept clip (16 kHz mono PCM16, loudness-normalised, padded
  by ``pad_s`` into the pauses around it, never past halfway to a neighbour), in the format of ``--data`` (see
  docs/data.md): ``audio``, ``sample_rate``, ``duration``, ``speaker``, ``split``, ``source``, ``license``,
  ``sha256``, ``text`` when transcribed, and provenance (``recording_id``, ``source_start_s``/``source_end_s`` in
  the source, ``url``, ``title``, ``channel``) and the quality measures.
- ``pairs/manifest.jsonl`` + ``pairs/audio/<split>/``: each mined pair as a conversational utterance: the first turn
  as ``audio``, the reply as ``response_audio`` (what ``custom_model.train_s2s --pairs`` reads), with ``gap_ms``.
- ``parquet/clips.parquet`` and ``parquet/pairs.parquet``: the same rows as a Hugging Face ``datasets`` table
  (``audio`` as ``{bytes, path}`` with the ``Audio`` feature; ``datasets.load_dataset("parquet", ...)`` reads it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .manifest import Record, read_jsonl, write_jsonl
from .media import SAMPLE_RATE, load_recording
from .pipeline import Context, Unit

QUALITY_FIELDS = ("snr_db", "clipped_fraction", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808")


def _write_wav(path: Path, y: np.ndarray) -> str:
    import hashlib

    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(y, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _padded(
    clip: dict, prev_end: float | None, next_start: float | None, pad_s: float, total_s: float
) -> tuple[float, float]:
    a = (
        clip["start_s"] - pad_s
        if prev_end is None
        else max(clip["start_s"] - pad_s, (prev_end + clip["start_s"]) / 2)
    )
    b = (
        clip["end_s"] + pad_s
        if next_start is None
        else min(clip["end_s"] + pad_s, (clip["end_s"] + next_start) / 2)
    )
    return max(0.0, a), min(total_s, b)


def _base(rec: Record, language: str) -> Record:
    return {k: v for k, v in {
        "speaker": rec.get("speaker"), "language": language, "split": rec.get("split"),
        "source": rec.get("url") or rec.get("source"), "license": rec.get("license") or "unknown",
        "recording_id": rec.get("recording_id"), "url": rec.get("url"), "title": rec.get("title"),
        "channel": rec.get("channel"),
    }.items() if v is not None}  # fmt: skip


def process_export(unit: Unit, params: dict, ctx: Context) -> list[Record]:
    clips = sorted(unit["transcribe"], key=lambda r: r["start_s"])
    if not clips:
        return []
    rec = unit["loudness"][0]
    x = load_recording(ctx, rec)
    total = x.size / SAMPLE_RATE
    spans = {}
    out = []
    for i, c in enumerate(clips):
        prev_end = clips[i - 1]["end_s"] if i else None
        next_start = clips[i + 1]["start_s"] if i + 1 < len(clips) else None
        a, b = _padded(c, prev_end, next_start, params["pad_s"], total)
        spans[c["id"]] = (a, b)
        rel = f"clips/{c.get('split', 'train')}/{c['id']}.wav"
        sha = _write_wav(ctx.path(rel), x[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)])
        line = {"kind": "clip", "id": c["id"], "audio": rel, "sample_rate": SAMPLE_RATE,
                "duration": round(b - a, 4), **({"text": c["text"]} if c.get("text") else {}),
                **_base(c, params["language"]), "sha256": sha,
                "source_start_s": round(a, 4), "source_end_s": round(b, 4),
                "speech_start_s": c["start_s"], "speech_end_s": c["end_s"],
                **{k: c[k] for k in QUALITY_FIELDS if c.get(k) is not None}}  # fmt: skip
        out.append(line)
    for p in unit["pairs"]:
        q, r = p["first"], p["second"]
        files = {}
        for role, clip in (("q", q), ("a", r)):
            a, b = spans[clip["id"]]
            a, b = max(a, clip["start_s"] - params["pad_s"]), min(b, clip["end_s"] + params["pad_s"])
            if role == "q":
                b = min(b, q["end_s"] + p["gap_s"] / 2)
            else:
                a = max(a, r["start_s"] - p["gap_s"] / 2)
            rel = f"pairs/audio/{p.get('split', 'train')}/{p['id']}-{role}.wav"
            files[role] = (
                rel,
                _write_wav(ctx.path(rel), x[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]),
                a,
                b,
            )
        line = {"kind": "pair", "id": p["id"], "audio": files["q"][0][len("pairs/"):], "sample_rate": SAMPLE_RATE,
                "duration": round(files["q"][3] - files["q"][2], 4),
                **({"text": q["text"]} if q.get("text") else {}),
                **({"response_text": r["text"]} if r.get("text") else {}),
                "response_audio": files["a"][0][len("pairs/"):], "response_sha256": files["a"][1],
                "response_duration": round(files["a"][3] - files["a"][2], 4),
                "response_speaker": r.get("speaker"), **_base({**p, "speaker": q.get("speaker")}, params["language"]),
                "sha256": files["q"][1], "gap_ms": round(1000 * p["gap_s"], 1),
                "first_clip": q["id"], "second_clip": r["id"],
                "source_start_s": round(files["q"][2], 4), "source_end_s": round(files["a"][3], 4)}  # fmt: skip
        out.append(line)
    return out


def reduce_export(records: list[Record], params: dict, ctx: Context) -> list[Record]:
    """Write the two manifests (the stage's own manifest keeps both kinds)."""
    clips = [{k: v for k, v in r.items() if k != "kind"} for r in records if r["kind"] == "clip"]
    pairs = [{k: v for k, v in r.items() if k != "kind"} for r in records if r["kind"] == "pair"]
    write_jsonl(ctx.root / "manifest.jsonl", clips)
    write_jsonl(ctx.root / "pairs" / "manifest.jsonl", pairs)
    for r in records:
        r["duration_s"] = r["duration"] + r.get("response_duration", 0.0)
    return records


def _as_dataset(datasets, rows: list[dict]):
    """A ``datasets.Dataset`` whose audio columns carry the ``Audio`` feature, built from an Arrow table so that
    ``datasets`` does not re-encode the bytes (its encoder would need torchcodec)."""
    import pyarrow as pa

    keys = sorted({key for row in rows for key in row})
    audio_cols = [k for k in ("audio", "response_audio") if k in keys]
    plain = pa.Table.from_pylist([{k: row.get(k) for k in keys if k not in audio_cols} for row in rows])
    struct = pa.struct({"bytes": pa.binary(), "path": pa.string()})
    for k in audio_cols:
        plain = plain.append_column(k, pa.array([row.get(k) for row in rows], type=struct))
    features = datasets.Features.from_arrow_schema(plain.schema)
    for k in audio_cols:
        features[k] = datasets.Audio(sampling_rate=SAMPLE_RATE, decode=False)
    return datasets.Dataset(plain, info=datasets.DatasetInfo(features=features))


def write_parquet(root: Path, rows_per_shard: int = 2000) -> list[Path]:
    """``parquet/clips-NNNNN.parquet`` and ``parquet/pairs-NNNNN.parquet`` from the manifests, audio embedded."""
    try:
        import datasets
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "the parquet export needs 'datasets': pip install 's2s-bench[collect]'"
        ) from None
    out_dir = root / "parquet"
    for old in out_dir.glob("*.parquet"):
        old.unlink()
    written = []
    for name, manifest, base in (
        ("clips", root / "manifest.jsonl", root),
        ("pairs", root / "pairs" / "manifest.jsonl", root / "pairs"),
    ):
        if not manifest.exists():
            continue
        lines = read_jsonl(manifest)
        for k in range(0, len(lines), rows_per_shard):
            rows = []
            for line in lines[k : k + rows_per_shard]:
                row = {key: (v if not isinstance(v, (dict, list)) else str(v)) for key, v in line.items()}
                row["audio"] = {"bytes": (base / line["audio"]).read_bytes(), "path": line["audio"]}
                if "response_audio" in line:
                    row["response_audio"] = {
                        "bytes": (base / line["response_audio"]).read_bytes(),
                        "path": line["response_audio"],
                    }
                rows.append(row)
            ds = _as_dataset(datasets, rows)
            path = out_dir / f"{name}-{k // rows_per_shard:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.to_parquet(str(path))
            written.append(path)
    return written
