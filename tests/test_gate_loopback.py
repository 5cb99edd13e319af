"""The gate on real runs of the calibration backend (``loopback``, fast pacing, 12 synthetic clips).

A 50% slowdown is planted through loopback's ``delay_ms`` (100 -> 150 ms); the loopback's TTFA is its delay plus the
harness's overhead, so the planted change is known without asserting any wall-clock number.
"""

from __future__ import annotations

import pytest

from harness.cli import main
from harness.gate import compare, load_baseline, load_candidate, parse_rules, verdict_table
from harness.runner import run_benchmark

RULES = ["ttfa.p50:+10%", "ttfa.p95:+20%,20ms"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate_runs")

    def measure(name, *backends):
        return run_benchmark(
            list(backends),
            "synthetic-clips",
            limit=12,
            pacing="fast",
            out=root / name,
            progress=False,
            save_audio=False,
        )

    return {
        "base": measure("base", "loopback:delay_ms=100"),
        "rerun": measure("rerun", "loopback:delay_ms=100"),
        "slow": measure("slow", "loopback:delay_ms=150"),
        "other": measure("other", "loopback:delay_ms=100,chunk_ms=40"),
        "pair_base": measure("pair_base", "loopback:delay_ms=100", "loopback:delay_ms=60"),
        "pair_slow": measure("pair_slow", "loopback:delay_ms=150", "loopback:delay_ms=60"),
    }


def _gate(runs, base, cand, *extra):
    return main(
        [
            "gate",
            "--baseline",
            str(runs[base]),
            "--candidate",
            str(runs[cand]),
            *[a for r in RULES for a in ("--rule", r)],
            *extra,
        ]
    )


def test_planted_50_percent_slowdown_fails_the_gate_with_a_readable_verdict(runs, capsys):
    assert _gate(runs, "base", "slow", "--allow-option", "delay_ms") == 1
    out = capsys.readouterr().out
    assert "Gate FAILED: regression" in out, out
    # p50 is the robust statistic; p95 of 12 utterances on a busy shared machine may also carry an outlier
    row = next(line for line in out.splitlines() if "`ttfa.p50:+10%`" in line)
    assert "loopback:delay_ms=150" in row and "**worse**" in row, out
    change = float(row.split("|")[5].strip().rstrip("%"))
    assert 40 < change < 60  # 100 ms -> 150 ms plus the same small harness overhead on both sides


def test_identical_rerun_passes(runs, capsys):
    assert _gate(runs, "base", "rerun") == 0
    out = capsys.readouterr().out
    assert "Gate passed" in out and "worse" not in out.split("Gate passed")[1]


def test_runs_with_different_options_are_not_comparable_not_regressions(runs):
    rules = parse_rules(RULES)
    base = load_baseline(runs["base"])
    for cand, allowed, why in [
        ("slow", set(), "option delay_ms 100.0 vs 150.0"),
        ("other", {"delay_ms"}, "option chunk_ms 20.0 vs 40.0"),
    ]:
        verdicts = compare(base, load_candidate(runs[cand]), rules, allow_options=allowed)
        assert [v.verdict for v in verdicts] == ["x", "x"], verdict_table(verdicts)
        assert why in verdicts[0].note
    assert _gate(runs, "base", "other") == 0  # not comparable is not a failure


def test_same_run_reference_ratio_catches_the_slowdown(runs, capsys):
    rule = "ttfa.p50@loopback:delay_ms=60:+10%,10ms"
    assert (
        main(
            [
                "gate",
                "--baseline",
                str(runs["pair_base"]),
                "--candidate",
                str(runs["pair_slow"]),
                "--rule",
                rule,
                "--allow-option",
                "delay_ms",
            ]
        )
        == 1
    )
    row = next(line for line in capsys.readouterr().out.splitlines() if rule in line)
    base_ratio, cand_ratio = (float(row.split("|")[i].strip().rstrip("x")) for i in (3, 4))
    assert 1.5 < base_ratio < 1.8 and 2.3 < cand_ratio < 2.6  # ~100/60 and ~150/60
    assert (
        main(
            [
                "gate",
                "--baseline",
                str(runs["pair_base"]),
                "--candidate",
                str(runs["pair_base"]),
                "--rule",
                rule,
            ]
        )
        == 0
    )


def test_saved_baseline_round_trip_gates_the_same(runs, tmp_path):
    saved = tmp_path / "reports" / "baselines" / "loopback.json"
    assert main(["gate", "--save-baseline", str(runs["base"]), "--out", str(saved)]) == 0
    rules = parse_rules(RULES)
    from_json = compare(load_baseline(saved), load_candidate(runs["slow"]), rules, allow_options={"delay_ms"})
    from_dir = compare(
        load_baseline(runs["base"]), load_candidate(runs["slow"]), rules, allow_options={"delay_ms"}
    )
    assert [(v.verdict, v.baseline, v.p_value) for v in from_json] == [
        (v.verdict, v.baseline, v.p_value) for v in from_dir
    ]
