"""``pytest --backend=... --s2s-compare BASELINE --s2s-compare-fail RULE`` makes a suite run a gate."""

from __future__ import annotations

import pytest
import scipy.stats  # noqa: F401 - loaded before pytester's in-process runs, which unload modules they import

from harness.gate import save_baseline
from harness.report.runs import load_run_folder
from harness.runner import run_benchmark

pytest_plugins = ["pytester"]

SUITE = """
def test_measured(s2s_run):
    assert s2s_run.summary
"""


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    root = tmp_path_factory.mktemp("pytest_gate")
    run = run_benchmark(
        ["loopback:delay_ms=100"],
        "synthetic-clips",
        limit=6,
        pacing="fast",
        out=root / "base",
        progress=False,
        save_audio=False,
    )
    return save_baseline(load_run_folder(run), root / "baselines" / "loopback.json")


@pytest.fixture()
def suite(pytester):
    # What harness.pytest_plugin does with one line: pytest_plugins = ["harness.pytest_gate"]
    pytester.makeconftest('pytest_plugins = ["harness.pytest_gate"]\n')
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def _run(suite, spec, *extra):
    return suite.runpytest_inprocess(
        f"--backend={spec}", "--s2s-pacing=fast", "--s2s-limit=6", f"--s2s-out={suite.path / 'run'}", *extra
    )


def test_regression_fails_the_pytest_session(suite, baseline):
    result = _run(
        suite,
        "loopback:delay_ms=150",
        f"--s2s-compare={baseline}",
        "--s2s-compare-fail=ttfa.p50:+10%",
        "--s2s-compare-allow-option=delay_ms",
        f"--s2s-compare-out={suite.path / 'verdict.md'}",
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*s2s-bench gate*", "*ttfa.p50:+10%*worse*", "*Gate FAILED*"])
    assert "worse" in (suite.path / "verdict.md").read_text()


def test_same_setup_passes_and_compare_alone_only_reports(suite, baseline):
    result = _run(
        suite, "loopback:delay_ms=100", f"--s2s-compare={baseline}", "--s2s-compare-fail=ttfa.p50:+10%"
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*Gate passed*"])


def test_bad_rule_is_a_usage_error_before_measuring(suite, baseline):
    result = _run(
        suite, "loopback:delay_ms=100", f"--s2s-compare={baseline}", "--s2s-compare-fail=ttfa:+fast"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ttfa:+fast" in result.stderr.str()
    assert not (suite.path / "run").exists()
