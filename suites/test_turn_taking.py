"""Turn-taking suite: ``pytest suites/test_turn_taking.py --backend=SPEC [--backend=SPEC ...]``.

Builds the turn-taking scenarios (smooth, pause, interrupt, backchannel: harness.turns.scenarios) from the first
``--s2s-turn-limit`` questions of ``--s2s-turn-data`` (default ``--s2s-data``) and measures every backend on them
twice in realtime pacing, side by side: with the oracle (``end_input()`` at the end of the file) and without it
(``endpointing=system``: the microphone stays open; backends that cannot endpoint themselves get the endpointer
adapter). The terminal summary shows both runs' latency and turn-taking tables. No timing threshold is asserted:
these tests check that every turn was measured or failed with a reason, that both runs can be rescored from their
folders, and what must hold by construction (the oracle never lets the user speak into an answer; the adapter
never ends a turn before its hangover has passed).
"""

from __future__ import annotations

import json

import pytest

from harness.latency import final_attempts, summarize
from harness.rescore import check_run
from harness.turns.scenarios import SCENARIOS

MODES = ("oracle", "system")
WINDOW_MS = 32.0
"""The endpointer's VAD decides on 32 ms windows."""
SPEECH_END_SLACK_MS = 100.0
"""How far the endpointer's idea of the end of speech may sit before the harness's (VAD padding, its windows)."""


@pytest.mark.parametrize("mode", MODES)
def test_every_scenario_turn_measured_or_failed_with_reason(s2s_turn_runs, s2s_backend_key, mode):
    run = s2s_turn_runs[mode]
    summary = run.summary[s2s_backend_key]
    assert summary["n"] == run.meta["data"]["n"], "some turns were never attempted"
    for failure in summary["failures"] + summary["truncated"]:
        assert failure["kind"] and failure["reason"], f"failure without a reason: {failure}"
    scenarios = summary["turns"]["scenarios"]
    assert sum(s["n"] for s in scenarios.values()) == summary["n"]
    assert set(scenarios) <= set(SCENARIOS)
    assert summary["turns"]["endpointing"] == mode


@pytest.mark.parametrize("mode", MODES)
def test_rescore_reproduces_summary_and_folder_agrees(s2s_turn_runs, mode):
    run = s2s_turn_runs[mode]
    fresh = summarize(run.events)
    stored = {b: {k: v for k, v in s.items() if k != "metrics"} for b, s in run.summary.items()}
    assert json.dumps(fresh, sort_keys=True) == json.dumps(stored, sort_keys=True)
    assert check_run(run) == []


def test_the_oracle_closes_the_microphone_at_the_end_of_the_file(s2s_turn_runs, s2s_backend_key):
    """With the oracle, input ends with the file: nothing is injected and no endpointer runs."""
    run = s2s_turn_runs["oracle"]
    for (b, u), evs in final_attempts(run.events).items():
        if b != s2s_backend_key:
            continue
        kinds = [e["e"] for e in evs]
        assert "inject" not in kinds, f"{u}: user speech injected although endpointing=oracle"
        assert not [e for e in evs if e["e"] == "mark" and e["name"] in ("endpoint", "barge_in")], u
        start = next((e for e in evs if e["e"] == "utt_start"), None)
        if start is not None and "input_end" in kinds:
            pushed = sum(e["n"] for e in evs if e["e"] == "push")
            assert pushed == start["in_samples"], (
                f"{u}: pushed {pushed} samples of a {start['in_samples']} file"
            )


def test_without_the_oracle_nothing_ends_the_input(s2s_turn_runs, s2s_backend_key):
    """endpointing=system: end_input() is never called, and the run says who decided."""
    run = s2s_turn_runs["system"]
    entry = next(b for b in run.meta["backends"] if b["key"] == s2s_backend_key)
    if "load_error" in entry:
        pytest.skip(f"{s2s_backend_key} could not be loaded: {entry['load_error']}")
    assert entry["endpointing"] in ("itself", "endpointer adapter")
    assert run.meta["settings"]["endpointing"] == "system"
    if entry["endpointing"] == "endpointer adapter":
        assert run.meta["endpointer"]["hangover_ms"] == run.meta["settings"]["endpointer"]["hangover_ms"]
    for (b, u), evs in final_attempts(run.events).items():
        if b == s2s_backend_key:
            assert not [e for e in evs if e["e"] == "input_end"], f"{u}: input_end in endpointing=system"


def test_the_endpointer_waits_for_its_hangover(s2s_turn_runs, s2s_backend_key):
    """An adapter-endpointed turn ends no sooner than the hangover after the end of speech (smooth questions:
    the audio decides, so a slow machine can only make it later)."""
    run = s2s_turn_runs["system"]
    hangover = run.meta["settings"]["endpointer"]["hangover_ms"]
    smooth = run.summary[s2s_backend_key]["turns"]["scenarios"].get("smooth", {})
    endpoint = smooth.get("endpoint_ms", {})
    if not endpoint.get("n"):
        pytest.skip(
            "no endpointer decision in the smooth turns (a backend that endpoints itself, or none spoke)"
        )
    assert endpoint["min"] >= hangover - WINDOW_MS - SPEECH_END_SLACK_MS, endpoint
