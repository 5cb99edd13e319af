"""``s2s-bench gate --against REV``: REV served from a temporary worktree beside the working tree, in one run.

The integration tests build a throwaway git repository holding this checkout's ``harness/`` and ``backends/``
(nothing else is needed to serve ``loopback``): ``main`` is the base, the branch ``feature`` (checked out) plants a
slowdown in ``loopback``, and further branches hold a revision that cannot start and one that speaks another
protocol. The planted slowdown is large (+80 ms on 30 ms) so its verdict does not depend on how busy the machine is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.gate import Verdict, compare, parse_rules, verdict_table, wilcoxon_p
from harness.gate_against import (
    AGAINST_RULES,
    EXIT_NOT_COMPARABLE,
    EXIT_REGRESSION,
    NotComparable,
    judge,
    measure_side_by_side,
    write_outcome,
)
from harness.report.runs import RunData
from harness.revision import RevisionError, resolve

ROOT = Path(__file__).resolve().parents[1]
SPEC = "loopback:delay_ms=30"
DUE = 'return self.t_end + (self.o["delay_ms"] + k * self.o["chunk_ms"] * self.o["rtf"]) / 1000.0'


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"anchor not found in {path}: {old!r}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def branch(repo: Path, name: str, rel: str, old: str, new: str) -> str:
    git(repo, "checkout", "-q", "-b", name, "main")
    edit(repo / rel, old, new)
    git(repo, "commit", "-qam", name)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> dict:
    """A throwaway repository: main (base), feature (planted, checked out), broken, proto0."""
    root = tmp_path_factory.mktemp("against") / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for rel in git(
        ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "harness", "backends"
    ).splitlines():
        if (ROOT / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, root / rel)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    commits = {"main": git(root, "rev-parse", "HEAD")}
    commits["broken"] = branch(
        root, "broken", "backends/loopback.py", "import threading\n", "import threading(\n"
    )
    commits["proto0"] = branch(
        root, "proto0", "harness/server/protocol.py", 'PROTOCOL = "s2s-ws/1"', 'PROTOCOL = "s2s-ws/0"'
    )
    commits["feature"] = branch(
        root,
        "feature",
        "backends/loopback.py",
        DUE,
        DUE.replace("return self.t_end + ", "return self.t_end + 0.080 + "),
    )
    return {"root": root, **commits}


def measure(repo: dict, tmp_path: Path, against: str | None):
    return measure_side_by_side(
        [SPEC],
        against,
        data="synthetic-clips",
        limit=8,
        pacing="fast",
        out=tmp_path / "gate",
        repo=repo["root"],
        serve_timeout_s=120,
    )


# ------------------------------------------------------------------------------------------------ unit


def test_paired_test_sees_a_shift_that_the_spread_between_utterances_hides_from_mann_whitney():
    rng = np.random.default_rng(0)
    base = {
        f"u{i}": float(v) for i, v in enumerate(rng.uniform(100, 300, 16))
    }  # trailing silence differs a lot
    cand = {u: v + 15.0 + rng.normal(0, 2) for u, v in base.items()}  # the same utterances, 15 ms later
    p_paired, pairs = wilcoxon_p(base, cand)
    assert pairs == 16 and p_paired < 0.001
    run = lambda vals: RunData("x", {"backends": [{"key": "b", "name": "b"}]}, {"b": {"ttfa_ms": vals}}, {})  # noqa: E731
    rules = parse_rules(["ttfa.p50:+5%,10ms"])
    (mw,) = compare(run(base), run(cand), rules, test="mannwhitney")
    (paired,) = compare(run(base), run(cand), rules, test="wilcoxon")
    assert mw.verdict == "~" and mw.p_value > 0.05
    assert paired.verdict == "worse" and paired.p_mann_whitney == mw.p_value and paired.n_pairs == 16
    table = verdict_table([paired])
    assert "p (paired)" in table and "p (Mann-Whitney)" in table and "Wilcoxon signed-rank" in table


def test_the_default_rtf_rule_catches_more_compute_per_frame_but_not_a_dumping_backends_jitter():
    # Synthetic per-utterance values shaped like the measured gates (reports/gate-power.md): custom's RTF ~0.19
    # +27% with TTFA +3 ms, loopback's RTF ~0.01 +-20% between its utterances.
    rng = np.random.default_rng(1)
    ids = [f"u{i}" for i in range(16)]
    per_utt = lambda lo, hi: dict(zip(ids, map(float, rng.uniform(lo, hi, 16)), strict=True))  # noqa: E731
    ttfa, rtf, dump = per_utt(30, 250), per_utt(0.17, 0.23), per_utt(0.008, 0.013)
    meta = {"backends": [{"key": "custom", "name": "custom"}, {"key": "loopback", "name": "loopback"}]}
    status = {k: dict.fromkeys(ids, "ok") for k in ("custom", "loopback")}

    def run(custom_ttfa, custom_rtf, loop_rtf):
        samples = {
            "custom": {"ttfa_ms": custom_ttfa, "rtf": custom_rtf},
            "loopback": {"ttfa_ms": dict(ttfa), "rtf": loop_rtf},
        }
        return RunData("x", meta, samples, status)

    base = run(ttfa, rtf, dump)
    slower = run(
        {u: v + 3.0 + rng.normal(0, 1) for u, v in ttfa.items()},
        {u: v * 1.27 for u, v in rtf.items()},
        per_utt(0.008, 0.013),  # fresh jitter, no change
    )
    verdicts = {
        (v.backend, v.rule): v.verdict
        for v in compare(base, slower, parse_rules(list(AGAINST_RULES)), test="wilcoxon")
    }
    assert verdicts[("custom", "ttfa.p50:+5%,10ms")] != "worse"  # 3 ms: under the TTFA floor
    assert verdicts[("custom", "rtf.p50:+10%,0.02")] == "worse"
    assert verdicts[("loopback", "rtf.p50:+10%,0.02")] != "worse"  # past 10% at times, never past the floor


def test_wilcoxon_needs_two_nonzero_differences():
    assert wilcoxon_p({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 2.0}) == (1.0, 2)
    assert wilcoxon_p({"a": 1.0}, {"b": 2.0}) == (1.0, 0)


def test_a_strict_table_fails_on_x():
    x = Verdict("b", "ttfa.p50:+10%", "x", note="no samples")
    assert "Gate passed" in verdict_table([x])
    assert "FAILED: not comparable" in verdict_table([x], strict=True)


def test_default_revision_is_the_merge_base_or_the_previous_commit(tmp_path):
    r = tmp_path / "r"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    for i in range(3):
        (r / "f").write_text(str(i))
        git(r, "add", "f")
        git(r, "commit", "-qm", f"main {i}")
    main = [git(r, "rev-parse", f"HEAD~{i}") for i in range(3)]
    assert resolve(r, None).commit == main[1]  # HEAD is main: its first parent
    git(r, "checkout", "-q", "-b", "feature")
    (r / "f").write_text("feature")
    git(r, "commit", "-qam", "feature")
    chosen = resolve(r, None)
    assert chosen.commit == main[0] and "merge base" in chosen.chosen_by
    git(r, "checkout", "-q", "--detach", "main")
    assert resolve(r, None).commit == main[1]
    assert resolve(r, "HEAD~2").commit == main[2]
    with pytest.raises(RevisionError, match="Cannot find revision 'nope'"):
        resolve(r, "nope")


# ------------------------------------------------------------------------------------------------ integration


def test_a_planted_slowdown_is_worse_and_both_sides_say_how_they_ran(repo, tmp_path):
    measured = measure(repo, tmp_path, None)  # default: the merge base of feature and main
    assert measured.revision.commit == repo["main"]
    verdicts, code = judge(measured, ["ttfa.p50:+10%,10ms"])
    assert code == EXIT_REGRESSION, verdict_table(verdicts)
    (v,) = verdicts
    assert v.verdict == "worse" and v.test == "wilcoxon" and v.candidate - v.baseline > 50
    base = json.loads((measured.base_run / "run.json").read_text())
    cand = json.loads((measured.candidate_run / "run.json").read_text())
    assert base["git"]["commit"] == repo["main"] and cand["git"]["commit"] == repo["feature"]
    assert [b["key"] for b in base["backends"]] == [SPEC] == [b["key"] for b in cand["backends"]]
    assert base["backends"][0]["served"]["tree"] != cand["backends"][0]["served"]["tree"]
    assert cand["backends"][0]["served"]["tree"] == str(repo["root"].resolve())
    assert base["data"] == cand["data"] and base["settings"] == cand["settings"]
    combined = [
        json.loads(line) for line in (measured.out / "combined" / "events.jsonl").read_text().splitlines()
    ]
    firsts = [e["b"] for e in combined if e.get("e") == "utt_start"]
    assert firsts[0] != firsts[2], "the order of the sides must alternate per utterance"
    paths = write_outcome(measured, verdicts, code, alpha=0.05)
    text = paths["markdown"].read_text()
    assert repo["main"] in text and "temporary git worktree" in text and "FAILED: regression" in text
    assert json.loads(paths["json"].read_text())["exit_code"] == EXIT_REGRESSION
    assert len(git(repo["root"], "worktree", "list").splitlines()) == 1, (
        "the temporary worktree was not removed"
    )


def test_a_revision_whose_server_cannot_start_is_not_comparable(repo, tmp_path):
    with pytest.raises(NotComparable, match=r"(?s)exited with code .*SyntaxError"):
        measure(repo, tmp_path, "broken")
    assert len(git(repo["root"], "worktree", "list").splitlines()) == 1


def test_a_revision_speaking_another_protocol_is_not_comparable(repo, tmp_path):
    with pytest.raises(NotComparable, match="speaks 's2s-ws/0'"):
        measure(repo, tmp_path, "proto0")


def test_cli_exit_code_3_for_an_unknown_revision(tmp_path, capsys):
    from harness.cli import main

    code = main(["gate", "--against", "no-such-rev-xyz", "--backend", SPEC, "--out", str(tmp_path / "g")])
    assert code == EXIT_NOT_COMPARABLE
    assert "NOT COMPARABLE" in capsys.readouterr().err
    assert json.loads((tmp_path / "g" / "gate.json").read_text())["exit_code"] == EXIT_NOT_COMPARABLE


def test_pytest_s2s_against_fails_the_session_on_the_planted_slowdown(repo, tmp_path):
    (repo["root"] / "test_suite.py").write_text("def test_measured(s2s_run):\n    assert s2s_run.summary\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_suite.py", f"--backend={SPEC}"]
        + ["--s2s-data=synthetic-clips", "--s2s-limit=8", "--s2s-pacing=fast", "--s2s-against=main"]
        + [f"--s2s-out={tmp_path / 'gate'}", "--s2s-compare-fail=ttfa.p50:+10%,10ms"],
        cwd=repo["root"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    (repo["root"] / "test_suite.py").unlink()
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout and "FAILED: regression" in done.stdout
    assert (tmp_path / "gate" / "candidate" / "run.json").exists()


def test_load_against_ramps_the_revision_beside_the_working_tree(repo, tmp_path):
    from harness.server.capacity import run_capacity

    report = run_capacity(
        [SPEC],
        levels=(1, 2),
        rounds=1,
        data="synthetic-clips",
        budget_ms=5000,
        out=tmp_path / "load",
        against="main",
        repo=repo["root"],
    )
    base, cand = report.backends
    assert base.backend == f"{SPEC} @ {repo['main'][:12]}" and base.revision == repo["main"]
    assert cand.backend == SPEC and cand.revision == repo["feature"]
    assert [lv.concurrency for lv in base.levels] == [1, 2] == [lv.concurrency for lv in cand.levels]
    for b, c in zip(base.levels, cand.levels, strict=True):  # the planted +80 ms is the working tree's only
        assert c.ttfa_p50_ms - b.ttfa_p50_ms > 50, (b, c)
    saved = json.loads((tmp_path / "load" / "load.json").read_text())
    assert saved["against"]["commit"] == repo["main"] and saved["backends"][0]["revision"] == repo["main"]
    text = (tmp_path / "load" / "load.md").read_text()
    assert f"@ {repo['main'][:12]}" in text and "temporary git worktree" in text
    assert len(git(repo["root"], "worktree", "list").splitlines()) == 1, (
        "the temporary worktree was not removed"
    )
