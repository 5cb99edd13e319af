"""The ``turns`` and ``pairs`` stages: speaker turns as clips, and (turn, reply) pairs mined from them.

``turns`` joins consecutive VAD segments of one speaker while the pause between them is at most
``max_turn_pause_s`` and the clip stays within ``max_clip_s``; so a clip is a speaker's turn (or a piece of a long
one, cut at a pause between segments, never mid-word). Unlabelled segments stay clips of their own.

``pairs``: a clip of one speaker immediately followed (no other speech between, kept or not) by a clip of another
speaker, starting ``min_gap_s``..``max_gap_s`` after the first ends, both kept by the filters and duplicate removal,
each at most ``max_turn_s``: the first is the prompt (``audio``), the second the reply (``response_audio``). The gap
is recorded (``gap_s``); it is what a response model learns as "when to answer".
"""

from __future__ import annotations

from .manifest import Record, provenance
from .pipeline import Context, Unit

CLIP_FIELDS = (
    "id",
    "start_s",
    "end_s",
    "duration_s",
    "speaker",
    "text",
    "snr_db",
    "dnsmos_ovrl",
    "dnsmos_p808",
)


def process_turns(unit: Unit, params: dict, ctx: Context) -> list[Record]:
    segs = sorted(unit["speakers"], key=lambda r: r["start_s"])
    clips: list[list[Record]] = []
    for s in segs:
        cur = clips[-1] if clips else None
        if (
            cur is not None
            and s["speaker"] is not None
            and cur[-1]["speaker"] == s["speaker"]
            and s["start_s"] - cur[-1]["end_s"] <= params["max_turn_pause_s"]
            and s["end_s"] - cur[0]["start_s"] <= params["max_clip_s"]
        ):
            cur.append(s)
        else:
            clips.append([s])
    out = []
    for k, group in enumerate(clips):
        first, last = group[0], group[-1]
        out.append({
            "id": f"{first['recording_id']}-c{k:04d}", **provenance(first), "start_s": first["start_s"],
            "end_s": last["end_s"], "duration_s": round(last["end_s"] - first["start_s"], 4),
            "speaker": first["speaker"], "segments": [g["id"] for g in group],
            "cut": last.get("cut", "vad"),
        })  # fmt: skip
    return out


def process_pairs(unit: Unit, params: dict, ctx: Context) -> list[Record]:
    every = sorted(unit["turns"], key=lambda r: r["start_s"])
    kept = {r["id"]: r for r in unit["transcribe"]}
    out = []
    for a, b in zip(every, every[1:], strict=False):
        if a["id"] not in kept or b["id"] not in kept:
            continue
        first, second = kept[a["id"]], kept[b["id"]]
        gap = round(second["start_s"] - first["end_s"], 4)
        if (
            first.get("speaker") is None
            or second.get("speaker") is None
            or first["speaker"] == second["speaker"]
            or not params["min_gap_s"] <= gap <= params["max_gap_s"]
            or max(first["duration_s"], second["duration_s"]) > params["max_turn_s"]
        ):
            continue
        out.append({
            "id": f"{first['recording_id']}-p{len(out):04d}", **provenance(first), "gap_s": gap,
            "duration_s": round(first["duration_s"] + second["duration_s"], 4),
            "first": {k: first.get(k) for k in CLIP_FIELDS if first.get(k) is not None},
            "second": {k: second.get(k) for k in CLIP_FIELDS if second.get(k) is not None},
        })  # fmt: skip
    return out


def summarize_pairs(records_in: list[Record], records_out: list[Record], params: dict) -> dict:
    import numpy as np

    gaps = [p["gap_s"] for p in records_out]
    return {
        "pairs": len(records_out),
        "gap_s": {q: round(float(np.percentile(gaps, int(q[1:]))), 3) for q in ("p10", "p50", "p90")}
        if gaps
        else {},
    }
