"""Latency suite: ``pytest suites/test_latency.py --backend=SPEC``.

Measures time to first audio and the rest of harness.latency's metrics for every ``--backend`` in one run, and checks
the run's integrity. It never asserts a timing threshold: the numbers are in the run folder, the terminal summary and
``s2s-bench report``; regressions are judged by ``s2s-bench gate``.
"""

from __future__ import annotations

import json

from harness.latency import summarize
from harness.rescore import check_run


def test_every_utterance_measured_or_failed_with_reason(s2s_run, s2s_backend_key):
    summary = s2s_run.summary[s2s_backend_key]
    assert summary["n"] == s2s_run.meta["data"]["n"], "some utterances were never attempted"
    parts = ("n_ok", "n_no_answer", "n_truncated", "n_failed")
    assert sum(summary[k] for k in parts) == summary["n"], {k: summary[k] for k in parts}
    for failure in summary["failures"] + summary["truncated"]:
        assert failure["kind"] and failure["reason"], f"failure without a reason: {failure}"
    assert summary["n_answered"] == summary["n_ok"] + summary["n_truncated"]


def test_measured_utterances_have_latency(s2s_run, s2s_backend_key):
    summary = s2s_run.summary[s2s_backend_key]
    if summary["n_answered"] == 0:
        return  # nothing was answered: every utterance failed or stayed silent, each one listed (checked above)
    assert summary["ttfa_ms"]["n"] == summary["n_answered"], "an answered turn without a TTFA, or the reverse"
    assert summary["ttfb_ms"]["n"] >= summary["ttfa_ms"]["n"]
    assert summary["ttfa_km"]["n"] == summary["n"] and summary["ttfa_km"]["n_events"] == summary["n_answered"]


def test_events_are_ordered_per_utterance(s2s_run, s2s_backend_key):
    by_utt: dict[tuple, list[dict]] = {}
    for ev in s2s_run.events:
        if ev.get("b") == s2s_backend_key and "t" in ev:
            by_utt.setdefault((ev["u"], ev["a"]), []).append(ev)
    for (utt, _), evs in by_utt.items():
        times = [e["t"] for e in evs]
        assert times == sorted(times), f"{utt}: events out of order"
        kinds = [e["e"] for e in evs]
        if "input_end" in kinds:
            assert kinds[0] == "utt_start", f"{utt}: first event is {kinds[0]}"
            assert kinds.index("input_end") > max(i for i, k in enumerate(kinds) if k == "push")


def test_rescore_reproduces_summary(s2s_run):
    fresh = summarize(s2s_run.events)
    stored = {b: {k: v for k, v in s.items() if k != "metrics"} for b, s in s2s_run.summary.items()}
    assert json.dumps(fresh, sort_keys=True) == json.dumps(stored, sort_keys=True)


def test_folder_agrees_with_its_log(s2s_run):
    """Onsets re-derived from the output WAVs, out_samples, event order and speech ends match the log."""
    assert check_run(s2s_run) == []
