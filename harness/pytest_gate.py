"""pytest as a gate: ``pytest suites/ --backend=SPEC --s2s-compare BASELINE [--s2s-compare-fail RULE ...]``.

``--s2s-compare`` prints the verdicts of this session's run(s) against a baseline (a run folder or a baseline JSON
from ``s2s-bench gate --save-baseline``) using the default rules; ``--s2s-compare-fail RULE`` (repeatable, rule
spelling of :mod:`harness.gate`) gates on those rules instead and makes the session fail (exit code 1) when one of
them regresses, like pytest-benchmark's ``--benchmark-compare-fail``.

``--s2s-against [REV]`` (an option of harness.pytest_plugin) measures REV beside the working tree in the session's
one run; at session end REV's side is the baseline, the test is paired by utterance, the rules are
``--s2s-compare-fail`` (default harness.gate_against.AGAINST_RULES) and the session fails on a regression or when
the sides cannot be compared (any ``x``). A ``--s2s-compare BASELINE`` given beside it is then only reported
(history, not deciding).

This module is a pytest plugin. ``harness.pytest_plugin`` loads it with ``pytest_plugins = ["harness.pytest_gate"]``
and keeps the runs it measured in ``config._s2s_runs`` (objects with a ``path`` to the run folder); at session
end each of them is compared with the baseline.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser) -> None:
    group = parser.getgroup("s2s-bench", "speech-to-speech benchmark (s2s-bench)")
    group.addoption(
        "--s2s-compare",
        default=None,
        metavar="BASELINE",
        help="compare this session's run with BASELINE (run folder or baseline .json) and print verdicts",
    )
    group.addoption(
        "--s2s-compare-fail",
        action="append",
        default=[],
        metavar="RULE",
        help="fail the session when RULE regresses, e.g. ttfa.p50:+10%% or ttfa.p50@loopback:+10%% "
        "(repeatable; needs --s2s-compare)",
    )
    group.addoption(
        "--s2s-compare-alpha",
        type=float,
        default=None,
        metavar="ALPHA",
        help="Mann-Whitney significance level (default 0.05)",
    )
    group.addoption(
        "--s2s-compare-allow-option",
        action="append",
        default=[],
        metavar="NAME",
        help="a backend option allowed to differ from the baseline (repeatable)",
    )
    group.addoption(
        "--s2s-compare-out",
        default=None,
        metavar="PATH",
        help="also write the verdict table (Markdown) to PATH",
    )


def pytest_configure(config) -> None:
    """Check the options before anything is measured: a bad rule or baseline is a usage error."""
    from .gate import DEFAULT_ALPHA, DEFAULT_RULES, GateUsageError, parse_rules

    baseline = config.getoption("s2s_compare", None)
    against = config.getoption("s2s_against", None)
    fail_rules = config.getoption("s2s_compare_fail", None) or []
    if fail_rules and not baseline and against is None:
        raise pytest.UsageError("--s2s-compare-fail needs --s2s-compare BASELINE or --s2s-against [REV]")
    alpha = config.getoption("s2s_compare_alpha")
    if against is not None:
        try:
            parse_rules(fail_rules or ["ttfa.p50:+10%"])
        except GateUsageError as exc:
            raise pytest.UsageError(f"--s2s-compare-fail: {exc}") from None
        if alpha is not None and not 0 < alpha < 1:
            raise pytest.UsageError(f"--s2s-compare-alpha must be between 0 and 1 but got {alpha}")
    if not baseline:
        return
    if not Path(baseline).exists():
        raise pytest.UsageError(
            f"--s2s-compare: baseline {baseline} does not exist (a run folder or a baseline .json)"
        )
    try:
        config._s2s_gate_rules = parse_rules(fail_rules or list(DEFAULT_RULES))
    except GateUsageError as exc:
        raise pytest.UsageError(f"--s2s-compare-fail: {exc}") from None
    config._s2s_gate_alpha = DEFAULT_ALPHA if alpha is None else alpha
    if not 0 < config._s2s_gate_alpha < 1:
        raise pytest.UsageError(f"--s2s-compare-alpha must be between 0 and 1 but got {alpha}")


def gate_session_runs(config) -> tuple[list[str], bool]:
    """(report lines, regressed?) for every run this session measured, against ``--s2s-compare``."""
    from .gate import GateUsageError, compare, load_baseline, load_candidate, regressed, verdict_table

    runs = getattr(config, "_s2s_runs", [])
    if not runs:
        return [
            "no run was measured in this session (no --backend, or no suite used s2s_run): nothing compared"
        ], False
    baseline_path = config.getoption("s2s_compare")
    lines, failed = [f"baseline: {baseline_path}"], False
    try:
        baseline = load_baseline(baseline_path)
        for run in runs:
            verdicts = compare(
                baseline,
                load_candidate(run.path),
                config._s2s_gate_rules,
                alpha=config._s2s_gate_alpha,
                allow_options=set(config.getoption("s2s_compare_allow_option")),
            )
            lines += [
                f"candidate: {run.path}",
                "",
                *verdict_table(verdicts, alpha=config._s2s_gate_alpha).splitlines(),
            ]
            failed = failed or regressed(verdicts)
    except GateUsageError as exc:
        return [f"gate error: {exc}"], True
    return lines, failed


def gate_against_lines(config) -> tuple[list[str], bool]:
    """(report lines, failed?) of ``--s2s-against``: REV's side against the candidate's, strict (``x`` fails)."""
    from .gate import DEFAULT_ALPHA
    from .gate_against import EXIT_CODES, judge, write_outcome

    measured = getattr(config, "_s2s_against_measured", None)
    if measured is None:
        why = getattr(config, "_s2s_against_error", None) or "no run was measured in this session"
        return [
            f"--s2s-against: NOT COMPARABLE: {why}",
            "gate FAILED: a gate that measured nothing never passes",
        ], True
    alpha = config.getoption("s2s_compare_alpha")
    alpha = DEFAULT_ALPHA if alpha is None else alpha
    verdicts, code = judge(measured, config.getoption("s2s_compare_fail") or None, alpha=alpha)
    paths = write_outcome(measured, verdicts, code, alpha=alpha)
    lines = paths["markdown"].read_text(encoding="utf-8").splitlines()
    return [*lines, f"written: {paths['markdown']} ({EXIT_CODES[code]})"], code != 0


def pytest_sessionfinish(session, exitstatus) -> None:
    config = session.config
    against = config.getoption("s2s_against", None) is not None
    if not config.getoption("s2s_compare", None) and not against:
        return
    lines, failed, gating = [], False, True
    if against:
        lines, failed = gate_against_lines(config)
    if config.getoption("s2s_compare", None):
        history, history_failed = gate_session_runs(config)
        if against:  # the absolute baseline is history here: reported, never deciding
            lines += [
                "",
                "history (not deciding): the candidate against the committed absolute baseline",
                *history,
            ]
        else:
            lines, failed = history, history_failed
            gating = bool(config.getoption("s2s_compare_fail"))
    config._s2s_gate_lines = lines
    if failed and gating and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    out = config.getoption("s2s_compare_out")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    lines = getattr(config, "_s2s_gate_lines", None)
    if not lines:
        return
    terminalreporter.section("s2s-bench gate")
    for line in lines:
        terminalreporter.write_line(line)
