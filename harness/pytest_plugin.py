"""pytest plugin (entry point ``pytest11``): ``pytest suites/ --backend=SPEC [--backend=SPEC ...]``.

All ``--backend`` values are measured in **one** run, interleaved (A B A B ...), once per pytest session; suite
tests receive that run and assert its integrity. With ``--s2s-against REV`` every backend is served from REV's tree
and from the working tree and both are measured in that one run (harness.gate_against); the suites receive the
candidate's side, and harness.pytest_gate judges it against REV's. Timing thresholds are never asserted: numbers go to the run
folder and the terminal summary, and regressions are judged by gates.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

pytest_plugins = ["harness.pytest_gate"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer but got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer but got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number but got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number but got {text!r}")
    return value


def _backend_spec(text: str) -> str:
    """The spec as given (checked): it creates the backend, secrets included; shown only as its redacted key."""
    from .backend import BackendSpec, OptionError

    try:
        return BackendSpec.parse(text).reveal()
    except OptionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def pytest_addoption(parser):
    group = parser.getgroup("s2s-bench", "speech-to-speech benchmark (s2s-bench)")
    group.addoption(
        "--backend",
        action="append",
        default=[],
        type=_backend_spec,
        metavar="SPEC",
        help="backend to measure, NAME[:key=value,...] (repeatable; measured side by side)",
    )
    group.addoption(
        "--s2s-data",
        default="synthetic-clips",
        metavar="NAME_OR_MANIFEST",
        help="dataset name or manifest path (default: synthetic-clips)",
    )
    group.addoption("--s2s-split", default=None, help="only this split of the data")
    group.addoption(
        "--s2s-limit", type=_positive_int, default=12, metavar="N", help="first N utterances (default 12)"
    )
    group.addoption(
        "--s2s-pacing",
        choices=("realtime", "fast"),
        default="realtime",
        help="input pacing (default realtime)",
    )
    group.addoption(
        "--s2s-concurrency",
        type=_positive_int,
        default=1,
        metavar="N",
        help="simultaneous sessions per backend (default 1)",
    )
    group.addoption(
        "--s2s-chunk-ms",
        type=_positive_float,
        default=20.0,
        metavar="MS",
        help="input chunk length (default 20)",
    )
    group.addoption(
        "--s2s-timeout",
        type=_positive_float,
        default=60.0,
        metavar="S",
        help="seconds allowed for an answer after the end of input (default 60)",
    )
    group.addoption(
        "--s2s-out", default=None, metavar="DIR", help="run folder (default reports/runs/pytest-DATE-TIME)"
    )
    group.addoption(
        "--s2s-endpointing",
        choices=("oracle", "system"),
        default="oracle",
        help="oracle (default): end_input() at the end of the file; system: never, the system decides",
    )
    group.addoption(
        "--s2s-endpointer-vad",
        choices=("auto", "silero", "energy"),
        default="auto",
        help="endpointing=system: the endpointer adapter's VAD (default auto)",
    )
    group.addoption(
        "--s2s-hangover-ms",
        type=_positive_float,
        default=500.0,
        metavar="MS",
        help="endpointing=system: silence that ends the user's turn for the endpointer adapter (default 500)",
    )
    group.addoption(
        "--s2s-turn-data",
        default=None,
        metavar="DATA",
        help="turn-taking suite: the questions its scenarios are built from (default: --s2s-data)",
    )
    group.addoption(
        "--s2s-turn-limit",
        type=_positive_int,
        default=2,
        metavar="N",
        help="turn-taking suite: first N questions, four scenarios each (default 2)",
    )
    group.addoption(
        "--s2s-turn-concurrency",
        type=_positive_int,
        default=8,
        metavar="N",
        help="turn-taking suite: simultaneous sessions per backend (default 8: realtime sessions mostly wait)",
    )
    group.addoption(
        "--s2s-turn-timeout",
        type=_positive_float,
        default=30.0,
        metavar="S",
        help="turn-taking suite: seconds the microphone stays open after the file without an answer (default 30)",
    )
    group.addoption(
        "--s2s-against",
        nargs="?",
        const="",
        default=None,
        metavar="REV",
        help="serve every --backend from git revision REV and from the working tree, measure both in one run "
        "and gate on it (no REV: merge base with main, or the previous commit when HEAD is main); --s2s-out "
        "is then the gate's folder (base/, candidate/, gate.md)",
    )
    group.addoption(
        "--s2s-serve-timeout",
        type=_positive_float,
        default=600.0,
        metavar="S",
        help="with --s2s-against: seconds a side's server may take to load (default 600)",
    )


def pytest_generate_tests(metafunc):
    if "s2s_backend_key" in metafunc.fixturenames:
        from .backend import BackendSpec

        keys = [BackendSpec.parse(s).key for s in metafunc.config.getoption("backend")]
        metafunc.parametrize(
            "s2s_backend_key",
            keys
            or [
                pytest.param(
                    None,
                    marks=pytest.mark.skip(
                        reason="no backend given: run with --backend=NAME[:key=value,...]"
                    ),
                )
            ],
            scope="session",
        )


@pytest.fixture(scope="session")
def s2s_run(request):
    """The session's run folder (a :class:`harness.results.Run`), measured once for all ``--backend`` values."""
    from datetime import datetime

    from .results import load_run
    from .runner import run_benchmark

    cfg = request.config
    specs = cfg.getoption("backend")
    if not specs:
        pytest.skip("no backend given: run with --backend=NAME[:key=value,...]")
    out = cfg.getoption("s2s_out") or Path("reports/runs") / (
        "pytest-" + datetime.now().strftime("%Y%m%d-%H%M%S")
    )
    if cfg.getoption("s2s_against") is not None:
        run = load_run(_measure_against(cfg, specs, out))
        cfg._s2s_runs = [*getattr(cfg, "_s2s_runs", []), run]
        return run
    path = run_benchmark(
        specs,
        cfg.getoption("s2s_data"),
        split=cfg.getoption("s2s_split"),
        limit=cfg.getoption("s2s_limit"),
        pacing=cfg.getoption("s2s_pacing"),
        chunk_ms=cfg.getoption("s2s_chunk_ms"),
        concurrency=cfg.getoption("s2s_concurrency"),
        timeout_s=cfg.getoption("s2s_timeout"),
        out=out,
        progress=False,
        endpointing=cfg.getoption("s2s_endpointing"),
        endpointer=_endpointer(cfg),
    )
    run = load_run(path)
    cfg._s2s_runs = [*getattr(cfg, "_s2s_runs", []), run]
    return run


def _endpointer(cfg):
    from .turns.endpointer import EndpointerSettings

    return EndpointerSettings(
        vad=cfg.getoption("s2s_endpointer_vad"), hangover_ms=cfg.getoption("s2s_hangover_ms")
    )


@pytest.fixture(scope="session")
def s2s_turn_runs(request):
    """The turn-taking scenarios (``turn-taking:DATA``) measured twice for all ``--backend`` values, realtime:
    ``{"oracle": Run, "system": Run}`` (harness.turns)."""
    from datetime import datetime

    from .results import load_run
    from .runner import run_benchmark

    cfg = request.config
    specs = cfg.getoption("backend")
    if not specs:
        pytest.skip("no backend given: run with --backend=NAME[:key=value,...]")
    base = cfg.getoption("s2s_out") or Path("reports/runs") / (
        "pytest-" + datetime.now().strftime("%Y%m%d-%H%M%S")
    )
    data = "turn-taking:" + (cfg.getoption("s2s_turn_data") or cfg.getoption("s2s_data"))
    runs = {}
    for mode in ("oracle", "system"):
        path = run_benchmark(
            specs,
            data,
            split=cfg.getoption("s2s_split"),
            limit=4 * cfg.getoption("s2s_turn_limit"),
            pacing="realtime",
            chunk_ms=cfg.getoption("s2s_chunk_ms"),
            concurrency=cfg.getoption("s2s_turn_concurrency"),
            timeout_s=cfg.getoption("s2s_turn_timeout"),
            out=Path(f"{base}-turns-{mode}"),
            suite="turn-taking",
            progress=False,
            endpointing=mode,
            endpointer=_endpointer(cfg),
        )
        runs[mode] = load_run(path)
    cfg._s2s_runs = [*getattr(cfg, "_s2s_runs", []), *runs.values()]
    return runs


def _measure_against(cfg, specs: list[str], out: Path) -> Path:
    """Both sides of ``--s2s-against``, measured; the candidate's split run folder (the gate is judged at the
    session's end by harness.pytest_gate). A side that cannot be served fails every test that needs the run."""
    from .gate import GateUsageError
    from .gate_against import NotComparable, measure_side_by_side

    try:
        measured = measure_side_by_side(
            specs,
            cfg.getoption("s2s_against") or None,
            data=cfg.getoption("s2s_data"),
            split=cfg.getoption("s2s_split"),
            limit=cfg.getoption("s2s_limit"),
            pacing=cfg.getoption("s2s_pacing"),
            chunk_ms=cfg.getoption("s2s_chunk_ms"),
            concurrency=cfg.getoption("s2s_concurrency"),
            timeout_s=cfg.getoption("s2s_timeout"),
            out=out,
            serve_timeout_s=cfg.getoption("s2s_serve_timeout"),
        )
    except (NotComparable, GateUsageError) as exc:
        cfg._s2s_against_error = str(exc)
        pytest.fail(f"--s2s-against: NOT COMPARABLE: {exc}", pytrace=False)
    cfg._s2s_against_measured = measured
    return measured.candidate_run


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    runs = getattr(config, "_s2s_runs", [])
    if not runs:
        return
    from .display import failure_lines, summary_table, turns_table

    tr = terminalreporter
    for run in runs:
        tr.section(f"s2s-bench: {run.path}")
        settings = run.meta["settings"]
        tr.write_line(
            f"data={run.meta['data']['name']} n={run.meta['data']['n']} pacing={settings['pacing']} "
            f"chunk={settings['chunk_ms']:g} ms concurrency={settings['concurrency']} "
            f"endpointing={settings.get('endpointing', 'oracle')}"
        )
        for line in summary_table(run.summary).splitlines():
            tr.write_line(line)
        for line in turns_table(run.summary).splitlines():
            tr.write_line(line)
        for line in failure_lines(run.summary):
            tr.write_line(line)
