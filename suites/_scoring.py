"""Shared checks of the quality and intelligibility suites (a helper module, not a test file)."""

from __future__ import annotations

import json

from harness.metrics import aggregate, get_metrics
from harness.metrics.core import MetricResult
from harness.metrics.scoring import LATENCY_ONLY


def read_scores(run_path) -> list[dict]:
    return [json.loads(x) for x in (run_path / "scores.jsonl").read_text(encoding="utf-8").splitlines() if x]


def backend_meta(run, key: str) -> dict:
    return next(b for b in run.meta["backends"] if b["key"] == key)


def check_integrity(run, key: str, metric_names: list[str]) -> None:
    """Every measured utterance has a line per metric, with a value or a reason; latency-only backends have no
    quality numbers; the corpus values in run.json are reproduced from scores.jsonl."""
    meta = json.loads((run.path / "run.json").read_text(encoding="utf-8"))  # rewritten by scoring
    scores = [s for s in read_scores(run.path) if s["b"] == key]
    uids = run.utterance_ids(key)
    for name in metric_names:
        lines = {s["u"]: s for s in scores if s["metric"] == name}
        assert set(lines) == set(uids), f"{name}: scored {sorted(lines)} but the run has {sorted(uids)}"
        for uid, s in lines.items():
            assert s["value"] is not None or s.get("reason"), f"{name} {uid}: no value and no reason"
            if backend_meta(run, key).get("latency_only"):
                assert s["value"] is None and s["reason"] == LATENCY_ONLY
        (metric,) = get_metrics(name)
        results = [
            MetricResult(s["value"], s.get("reason"), tuple(s["stats"]) if "stats" in s else None)
            for s in lines.values()
        ]
        stored = meta["summary"][key]["metrics"][name]
        fresh = aggregate(metric, results)
        assert json.dumps(fresh, sort_keys=True) == json.dumps(stored, sort_keys=True), name
