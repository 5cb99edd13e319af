"""Gate rules and verdicts on hand-built runs with planted latencies (no timing involved)."""

from __future__ import annotations

import json

import pytest
from synthetic_runs import jittered, write_run

from harness.cli import main
from harness.gate import (
    GateUsageError,
    Rule,
    compare,
    load_baseline,
    parse_rules,
    save_baseline,
    verdict_table,
)
from harness.report.runs import load_run_folder

LOOP = "loopback:delay_ms=100"


def _run(tmp_path, name, center, *, seed=0, **kw):
    backends = kw.pop("backends", None) or {
        LOOP: {"ttfa": jittered(center, seed=seed), "options": {"delay_ms": 100.0}}
    }
    return write_run(tmp_path / name, backends, **kw)


def test_rule_spellings_parse_to_metric_stat_threshold_and_floor():
    r = Rule.parse("ttfa.p95:+20%,20ms")
    assert (r.metric, r.stat, r.direction, r.threshold, r.threshold_unit, r.floor, r.floor_unit) == (
        "ttfa_ms",
        "p95",
        1,
        20.0,
        "%",
        20.0,
        "ms",
    )
    assert Rule.parse("wer:+0.5pt").stat == "mean" and Rule.parse("wer:+0.5pt").threshold_unit == "pt"
    ref = Rule.parse("ttfa.p50@loopback:delay_ms=80:+10%")
    assert ref.reference == "loopback:delay_ms=80" and ref.stat == "p50"
    assert Rule.parse("mark.asr_final.p90:+15%").metric == "mark.asr_final"
    assert Rule.parse("dnsmos_ovrl:-0.2").direction == -1


def test_round_one_offset_names_are_refused_with_their_replacements():
    with pytest.raises(GateUsageError, match="renamed; use audio_start .* simuleval_start_offset"):
        Rule.parse("start_offset.p50:+10%")
    assert Rule.parse("audio_end:+10%").metric == "audio_end_from_speech_end_ms"
    assert Rule.parse("simuleval_atd.p95:+10%,20ms").metric == "simuleval_atd_ms"


@pytest.mark.parametrize("bad", ["ttfa", "ttfa.p50:+ten%", "ttfa.p50:+10%,5%", "wer:+10ms", "ttfa.p42:+10%"])
def test_bad_rule_text_is_named_in_the_error(bad):
    with pytest.raises(GateUsageError) as info:
        parse_rules([bad])
    assert repr(bad) in str(info.value)


def test_planted_slowdown_is_worse_and_identical_rerun_is_same(tmp_path):
    base = load_run_folder(_run(tmp_path, "base", 100, seed=1))
    rerun = load_run_folder(_run(tmp_path, "rerun", 100, seed=2))
    slow = load_run_folder(_run(tmp_path, "slow", 150, seed=3))
    rules = parse_rules(["ttfa.p50:+10%", "ttfa.p95:+20%,20ms"])
    worse = compare(base, slow, rules)
    assert [v.verdict for v in worse] == ["worse", "worse"]
    table = verdict_table(worse)
    assert "**worse**" in table and "FAILED" in table and "+50" in table
    same = compare(base, rerun, rules)
    assert [v.verdict for v in same] == ["same", "same"]
    assert "passed" in verdict_table(same)


def test_faster_candidate_is_better_and_small_samples_are_not_significant(tmp_path):
    base = load_run_folder(_run(tmp_path, "base", 150))
    fast = load_run_folder(_run(tmp_path, "fast", 100))
    assert compare(base, fast, parse_rules(["ttfa.p50:+10%"]))[0].verdict == "better"
    few = {LOOP: {"ttfa": [100.0, 101.0], "options": {"delay_ms": 100.0}}}
    few_slow = {LOOP: {"ttfa": [150.0, 151.0], "options": {"delay_ms": 100.0}}}
    a = load_run_folder(write_run(tmp_path / "a", few))
    b = load_run_folder(write_run(tmp_path / "b", few_slow))
    v = compare(a, b, parse_rules(["ttfa.p50:+10%"]))[0]
    assert v.verdict == "~" and "not significant" in v.note


def test_absolute_floor_keeps_small_changes_from_failing(tmp_path):
    base = load_run_folder(_run(tmp_path, "base", 10))
    slower = load_run_folder(_run(tmp_path, "slower", 15))  # +50% but only 5 ms
    assert compare(base, slower, parse_rules(["ttfa.p50:+10%"]))[0].verdict == "worse"
    v = compare(base, slower, parse_rules(["ttfa.p50:+10%,20ms"]))[0]
    assert v.verdict == "~" and "floor" in v.note


def test_different_options_settings_data_or_machine_are_not_comparable(tmp_path):
    base = load_run_folder(_run(tmp_path, "base", 100))
    opts = load_run_folder(
        write_run(
            tmp_path / "opts",
            {"loopback:delay_ms=150": {"ttfa": jittered(150), "options": {"delay_ms": 150.0}}},
        )
    )
    v = compare(base, opts, parse_rules(["ttfa.p50:+10%"]))[0]
    assert v.verdict == "x" and "delay_ms 100.0 vs 150.0" in v.note
    # naming the option on purpose makes the change itself the thing measured
    assert (
        compare(base, opts, parse_rules(["ttfa.p50:+10%"]), allow_options={"delay_ms"})[0].verdict == "worse"
    )
    other = {"pacing": "realtime", "chunk_ms": 20, "concurrency": 1, "prebuffer_ms": 0, "min_stall_ms": 1}
    for kw, word in [
        ({"settings": other}, "pacing"),
        ({"suite": "quality"}, "suite"),
        ({"data": {"name": "telugu-mini", "n": 20, "ids_sha256": "zzz"}}, "data"),
        ({"machine": {"cpu": "Other", "cpu_count": 64, "gpu": "H100"}}, "machine class"),
    ]:
        cand = load_run_folder(_run(tmp_path / word.replace(" ", "_"), "c", 150, **kw))
        v = compare(base, cand, parse_rules(["ttfa.p50:+10%"]))[0]
        assert v.verdict == "x" and word in v.note


def test_same_run_reference_ratio_cancels_a_machine_wide_slowdown(tmp_path):
    """Both backends 40% slower (a busy machine): raw ms regress, the ratio to the reference does not."""

    def run(name, cand_ms, ref_ms, seed):
        return load_run_folder(
            write_run(
                tmp_path / name,
                {
                    "custom": {"ttfa": jittered(cand_ms, seed=seed)},
                    "loopback:delay_ms=80": {
                        "ttfa": jittered(ref_ms, seed=seed + 10),
                        "options": {"delay_ms": 80.0},
                    },
                },
            )
        )

    base, busy, slow = run("base", 200, 80, 0), run("busy", 280, 112, 1), run("slow", 300, 80, 2)
    raw = compare(base, busy, parse_rules(["ttfa.p50:+10%"]), backends=["custom"])[0]
    assert raw.verdict == "worse"
    ratio = compare(base, busy, parse_rules(["ttfa.p50@loopback:+10%"]))
    assert [(v.backend, v.verdict, v.note) for v in ratio] == [
        ("custom", "same", "within +10%; answered 20/20 -> 20/20")
    ]
    assert ratio[0].unit == "x" and abs(ratio[0].baseline - 2.5) < 0.2
    assert compare(base, slow, parse_rules(["ttfa.p50@loopback:+10%,20ms"]))[0].verdict == "worse"
    with pytest.raises(GateUsageError, match="not in"):
        compare(base, slow, parse_rules(["ttfa.p50@cascade:+10%"]))


def test_quality_rules_use_scores_and_the_metric_direction(tmp_path):
    def run(name, wer, mos):
        return load_run_folder(
            write_run(
                tmp_path / name,
                {
                    LOOP: {
                        "ttfa": jittered(100),
                        "options": {"delay_ms": 100.0},
                        "scores": {
                            "wer": jittered(wer, spread_ms=0.02),
                            "dnsmos_ovrl": jittered(mos, spread_ms=0.05),
                        },
                    }
                },
            )
        )

    base, cand = run("base", 0.20, 3.2), run("cand", 0.30, 2.8)
    verdicts = compare(base, cand, parse_rules(["wer:+0.5pt", "dnsmos_ovrl:0.1"]))
    assert [v.verdict for v in verdicts] == ["worse", "worse"]
    better = compare(cand, base, parse_rules(["wer:+0.5pt", "dnsmos_ovrl:0.1"]))
    assert [v.verdict for v in better] == ["better", "better"]
    random = load_run_folder(
        write_run(
            tmp_path / "random",
            {
                LOOP: {
                    "ttfa": jittered(100),
                    "options": {"delay_ms": 100.0},
                    "latency_only": True,
                    "scores": {"wer": jittered(0.9, spread_ms=0.02)},
                }
            },
        )
    )
    v = compare(base, random, parse_rules(["wer:+0.5pt", "ttfa.p50:+10%"]))
    assert [x.verdict for x in v] == ["x", "same"] and "latency only" in v[0].note
    missing = compare(base, cand, parse_rules(["cer:+1pt"]))[0]
    assert missing.verdict == "x" and "no cer samples" in missing.note


def test_saved_baseline_json_gates_like_the_run_folder(tmp_path):
    base_dir = _run(tmp_path, "base", 100, seed=1)
    slow = load_run_folder(_run(tmp_path, "slow", 150, seed=3))
    path = save_baseline(load_run_folder(base_dir), tmp_path / "baselines" / "loop.json")
    doc = json.loads(path.read_text())
    assert doc["schema"] == "s2s-bench.baseline/1" and len(doc["samples"][LOOP]["ttfa_ms"]) == 20
    rules = parse_rules(["ttfa.p50:+10%"])
    from_json = compare(load_baseline(path), slow, rules)[0]
    from_dir = compare(load_baseline(base_dir), slow, rules)[0]
    assert (from_json.verdict, from_json.baseline, from_json.p_value) == (
        from_dir.verdict,
        from_dir.baseline,
        from_dir.p_value,
    )


def test_gate_command_exit_codes(tmp_path, capsys):
    base = _run(tmp_path, "base", 100, seed=1)
    rerun = _run(tmp_path, "rerun", 100, seed=2)
    slow = _run(tmp_path, "slow", 150, seed=3)
    assert main(["gate", "--baseline", str(base), "--candidate", str(rerun), "--rule", "ttfa.p50:+10%"]) == 0
    code = main(
        [
            "gate",
            "--baseline",
            str(base),
            "--candidate",
            str(slow),
            "--rule",
            "ttfa.p50:+10%",
            "--out",
            str(tmp_path / "verdict.md"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1 and "**worse**" in out and (tmp_path / "verdict.md").read_text().count("worse") >= 1
    assert (
        main(["gate", "--baseline", str(base), "--candidate", str(slow), "--json", str(tmp_path / "v.json")])
        == 1
    )
    doc = json.loads((tmp_path / "v.json").read_text())
    assert doc["schema"] == "s2s-bench.verdicts/1" and doc["regressed"] is True
    assert [v["rule"] for v in doc["verdicts"]] == [
        "ttfa.p50:+10%,10ms",
        "ttfa.p95:+20%,20ms",
    ]  # the defaults
    assert main(["gate", "--baseline", str(base), "--candidate", str(slow), "--rule", "ttfa.p50:+lots"]) == 2
    assert "ttfa.p50:+lots" in capsys.readouterr().err
    assert main(["gate", "--baseline", str(tmp_path / "nope"), "--candidate", str(slow)]) == 2
    saved = tmp_path / "b.json"
    assert main(["gate", "--save-baseline", str(base), "--out", str(saved)]) == 0
    assert main(["gate", "--baseline", str(saved), "--candidate", str(slow), "--rule", "ttfa.p50:+10%"]) == 1


def test_failure_rate_rule_catches_a_backend_that_starts_crashing(tmp_path):
    ok = jittered(100)
    base = load_run_folder(write_run(tmp_path / "base", {LOOP: {"ttfa": ok}}))
    crashing = load_run_folder(write_run(tmp_path / "crash", {LOOP: {"ttfa": [None] * 10 + ok[10:]}}))
    v = compare(base, crashing, parse_rules(["failed:+5pt"]))[0]
    assert (v.verdict, v.baseline, v.candidate) == ("worse", 0.0, 0.5)


def test_reference_missing_from_the_baseline_is_not_comparable(tmp_path):
    base = load_run_folder(write_run(tmp_path / "base", {"custom": {"ttfa": jittered(200)}}))
    cand = load_run_folder(
        write_run(tmp_path / "cand", {"custom": {"ttfa": jittered(200)}, "loopback": {"ttfa": jittered(80)}})
    )
    v = compare(base, cand, parse_rules(["ttfa.p50@loopback:+10%"]))
    assert [(x.backend, x.verdict) for x in v] == [("custom", "x")] and "not in" in v[0].note


def test_unanswered_rule_counts_silent_turns_the_failure_rate_does_not(tmp_path):
    ok = jittered(100)
    base = load_run_folder(write_run(tmp_path / "base", {LOOP: {"ttfa": ok}}))
    cand = load_run_folder(write_run(tmp_path / "silent", {LOOP: {"ttfa": ok}}))
    for utt in list(cand.status[LOOP])[:10]:  # half the turns finish without a sound
        cand.status[LOOP][utt] = "no_answer"
    failed, unanswered = compare(base, cand, parse_rules(["failed:+5pt", "unanswered:+5pt"]))
    assert (failed.verdict, failed.candidate) == ("same", 0.0)
    assert (unanswered.verdict, unanswered.candidate) == ("worse", 0.5)
    (ttfa,) = compare(base, cand, parse_rules(["ttfa.p50:+10%"]))
    assert "answered 20/20 -> 10/20" in ttfa.note  # a TTFA verdict says how many turns it covers
