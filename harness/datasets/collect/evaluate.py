"""Score a collection of synthetic interviews against their planted truth (``*.truth.json`` beside each source).

- **boundaries**: every planted utterance start and end is matched to the nearest VAD segment start (or end) of the
  same recording; the share within ``tol_s`` (100 ms) is the recall; the share of detected boundaries within
  ``tol_s`` of a planted one of the same kind is the precision (a VAD split inside an utterance, at a comma, costs
  precision only).
- **turns**: the same for clip (turn) starts and ends against planted turns.
- **pairs**: a mined pair is correct when its first and second clips each overlap one planted turn by an
  intersection-over-union of at least 0.5 and those two turns form a planted pair; precision = correct / mined,
  recall = planted pairs found / planted pairs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .manifest import read_jsonl


def _truth_for(path: str) -> dict | None:
    p = Path(str(path) + ".truth.json")
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None


def _boundary_scores(
    planted: list[tuple[float, float]], found: list[tuple[float, float]], tol_s: float
) -> dict:
    hits = n = det_hits = det = 0
    fs, fe = np.array([a for a, _ in found]), np.array([b for _, b in found])
    ps, pe = np.array([a for a, _ in planted]), np.array([b for _, b in planted])
    for mine, theirs in ((ps, fs), (pe, fe)):
        for t in mine:
            n += 1
            hits += bool(theirs.size and np.min(np.abs(theirs - t)) <= tol_s)
        for t in theirs:
            det += 1
            det_hits += bool(mine.size and np.min(np.abs(mine - t)) <= tol_s)
    return {"planted": n, "within_tol": hits, "detected": det, "detected_within_tol": det_hits}


def _iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def _match_turn(span: tuple[float, float], turns: list[dict]) -> int | None:
    best = max(
        range(len(turns)), key=lambda i: _iou(span, (turns[i]["start_s"], turns[i]["end_s"])), default=None
    )
    if best is None or _iou(span, (turns[best]["start_s"], turns[best]["end_s"])) < 0.5:
        return None
    return best


def score_collection(root: str | Path, tol_s: float = 0.1) -> dict[str, Any]:
    """Boundary, turn and pair figures of a collection folder whose sources carry planted truth."""
    from .stages import stage_dir

    root = Path(root)
    recs = {r["id"]: r for r in read_jsonl(stage_dir(root, "ingest") / "manifest.jsonl")}
    segs = read_jsonl(stage_dir(root, "vad") / "manifest.jsonl")
    clips = read_jsonl(stage_dir(root, "turns") / "manifest.jsonl")
    pairs = read_jsonl(stage_dir(root, "pairs") / "manifest.jsonl")
    totals = {
        k: {"planted": 0, "within_tol": 0, "detected": 0, "detected_within_tol": 0}
        for k in ("boundaries", "turns")
    }
    pair_counts = {"planted": 0, "mined": 0, "correct": 0, "found": 0}
    per_recording = {}
    for rid, rec in recs.items():
        truth = _truth_for(rec["path"])
        if truth is None:
            continue
        planted_u = [(u["start_s"], u["end_s"]) for u in truth["utterances"]]
        planted_t = [(t["start_s"], t["end_s"]) for t in truth["turns"]]
        b = _boundary_scores(
            planted_u, [(s["start_s"], s["end_s"]) for s in segs if s["recording_id"] == rid], tol_s
        )
        t = _boundary_scores(
            planted_t, [(c["start_s"], c["end_s"]) for c in clips if c["recording_id"] == rid], tol_s
        )
        for k, v in (("boundaries", b), ("turns", t)):
            for kk in v:
                totals[k][kk] += v[kk]
        planted_pairs = {(p["first"], p["second"]) for p in truth["pairs"]}
        mined = [p for p in pairs if p["recording_id"] == rid]
        correct = set()
        n_correct = 0
        for p in mined:
            i = _match_turn((p["first"]["start_s"], p["first"]["end_s"]), truth["turns"])
            j = _match_turn((p["second"]["start_s"], p["second"]["end_s"]), truth["turns"])
            if i is not None and j is not None and (i, j) in planted_pairs:
                n_correct += 1
                correct.add((i, j))
        pair_counts["planted"] += len(planted_pairs)
        pair_counts["mined"] += len(mined)
        pair_counts["correct"] += n_correct
        pair_counts["found"] += len(correct)
        per_recording[rid] = {"boundaries": b, "turns": t, "pairs": {"planted": len(planted_pairs), "mined": len(mined),
                                                                      "correct": n_correct}}  # fmt: skip

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    out: dict[str, Any] = {"tolerance_s": tol_s, "recordings": len(per_recording)}
    for k, v in totals.items():
        out[k] = {
            **v,
            "recall": ratio(v["within_tol"], v["planted"]),
            "precision": ratio(v["detected_within_tol"], v["detected"]),
        }
    out["pairs"] = {**pair_counts, "precision": ratio(pair_counts["correct"], pair_counts["mined"]),
                    "recall": ratio(pair_counts["found"], pair_counts["planted"])}  # fmt: skip
    out["per_recording"] = per_recording
    return out
