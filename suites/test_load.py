"""Load suite: ``pytest suites/test_load.py --backend=SPEC`` (or ``s2s-bench load --backend SPEC``).

Serves each ``--backend`` on 127.0.0.1 in-process (a ``remote:url=...`` backend is measured where it is), ramps
concurrent sessions through the ``remote`` backend and reports TTFA p50/p95, stalls and errors per level and the
capacity within the budget. Bounded: levels from ``S2S_LOAD_LEVELS`` (default ``1,2,4``), one utterance per session
slot, and the ramp stops by itself when a level is overloaded. It asserts the report's integrity, never a timing
threshold: the table is printed and written to ``<--s2s-out or reports/load>/<backend>/load.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the load suite needs the serve extra: pip install 's2s-bench[serve]'")


@pytest.fixture(scope="session")
def load_reports(request):
    return {}


def _report(request, reports: dict, key: str):
    from harness.backend import BackendSpec
    from harness.results import slug
    from harness.server.load import run_load_suite

    if key not in reports:
        cfg = request.config
        levels = tuple(int(x) for x in os.environ.get("S2S_LOAD_LEVELS", "1,2,4").split(","))
        # the key shows secrets as ***: the spec as given creates the backend
        spec = next(s for s in cfg.getoption("backend") if BackendSpec.parse(s).key == key)
        parsed = BackendSpec.parse(spec)
        url = parsed.options.get("url") if parsed.name == "remote" else None
        root = Path(cfg.getoption("s2s_out") or "reports/runs") / "load"
        reports[key] = run_load_suite(
            spec,
            url=url,
            token=parsed.options.get("token") if url else None,
            levels=levels,
            rounds=1,
            data=cfg.getoption("s2s_data"),
            pacing=cfg.getoption("s2s_pacing"),
            timeout_s=cfg.getoption("s2s_timeout"),
            out=root / slug(key),
        )
    return reports[key]


def test_ramp_reports_every_level(request, load_reports, s2s_backend_key):
    report = _report(request, load_reports, s2s_backend_key)
    print("\n" + report.table())
    assert report.levels, "no level was measured"
    assert [lv.concurrency for lv in report.levels] == sorted(lv.concurrency for lv in report.levels)
    for lv in report.levels:
        assert lv.n_ok + lv.n_no_answer + lv.n_failed == lv.n > 0  # n_failed: failed or truncated
        assert sum(lv.errors.values()) == lv.n_failed, "a failed session has no error kind"
    if report.stopped_early is None:
        assert len(report.levels) == len(os.environ.get("S2S_LOAD_LEVELS", "1,2,4").split(","))


def test_capacity_matches_the_table(request, load_reports, s2s_backend_key):
    report = _report(request, load_reports, s2s_backend_key)
    passing = 0
    for lv in report.levels:
        if not lv.within(report.budget_ms):
            break
        passing = lv.concurrency
    assert report.capacity == passing
    assert Path(report.levels[0].run_dir).parent.joinpath("load.md").read_text().startswith("| concurrent")
