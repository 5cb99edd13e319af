"""What a reader tripped over in reports, fixed: mixed runs in one table, Pareto axes and error bars, one DNSMOS
plot, a log TTFA axis, P.808 vs P.835, RTFx under realtime pacing; and ``s2s-bench history``."""

from __future__ import annotations

import json

import pytest
from synthetic_runs import jittered, write_run

pytest.importorskip("matplotlib", reason="needs the report extra: pip install 's2s-bench[report]'")

from harness.cli import main  # noqa: E402
from harness.report import build_history, build_report  # noqa: E402
from harness.report.definitions import quality_definition  # noqa: E402
from harness.report.plots import log_ttfa_wanted, plotted_quality, quality_range  # noqa: E402
from harness.report.runs import load_run_folder  # noqa: E402

REALTIME = {"pacing": "realtime", "chunk_ms": 20, "concurrency": 1, "min_stall_ms": 1, "vad": "auto"}
FAST = {**REALTIME, "pacing": "fast"}


def _run(path, ttfa_ms, settings=FAST, scores=None, **kw):
    return write_run(
        path, {"loopback": {"ttfa": jittered(ttfa_ms), "scores": scores or {}}}, settings=settings, **kw
    )


def _set(run_dir, **fields):
    meta = json.loads((run_dir / "run.json").read_text())
    meta.update(fields)
    (run_dir / "run.json").write_text(json.dumps(meta))


def test_runs_measured_differently_get_a_warning(tmp_path):
    a = _run(tmp_path / "a", 100, settings=REALTIME, run_id="a")
    b = _run(
        tmp_path / "b", 100, settings=FAST, run_id="b", data={"name": "other", "n": 20, "ids_sha256": "x"}
    )
    md = (tmp_path / "r").joinpath("report.md")
    build_report([a, b], tmp_path / "r")
    text = md.read_text()
    assert "Warning: these runs were measured differently" in text
    assert (
        "pacing realtime in a vs fast in b" in text and "data synthetic n=20 in a vs other n=20 in b" in text
    )
    build_report([a, _run(tmp_path / "c", 120, settings=REALTIME, run_id="c")], tmp_path / "r2")
    assert "measured differently" not in (tmp_path / "r2" / "report.md").read_text()


def test_rtfx_is_not_shown_for_realtime_pacing(tmp_path):
    rt, fast = (
        _run(tmp_path / "rt", 100, settings=REALTIME, run_id="rt"),
        _run(tmp_path / "fast", 100, settings=FAST, run_id="fast"),
    )
    build_report([rt], tmp_path / "r1")
    assert "RTFx" not in (tmp_path / "r1" / "report.md").read_text().split("## End of speech")[0]
    build_report([rt, fast], tmp_path / "r2")
    summary = (tmp_path / "r2" / "report.md").read_text().split("## End of speech")[0]
    assert "RTFx" in summary and "n/a (realtime pacing)" in summary and "| 10.0 |" in summary


def test_dnsmos_gets_one_plot_by_its_overall_score_and_p808_is_not_called_p835(tmp_path):
    scores = {
        m: jittered(3.0, spread_ms=0.2) for m in ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808")
    }
    scores["wer"] = jittered(0.2, spread_ms=0.05)
    run = _run(tmp_path / "run", 100, scores=scores)
    build_report([run], tmp_path / "r")
    text = (tmp_path / "r" / "report.md").read_text()
    assert [line for line in text.splitlines() if line.endswith("vs TTFA")] == [
        "## dnsmos_ovrl vs TTFA",
        "## wer vs TTFA",
    ]
    assert "Error bars: 95% confidence intervals" in text
    assert (
        "P.808" in quality_definition("dnsmos_p808")
        and "P.835" not in quality_definition("dnsmos_p808").split(";")[0]
    )
    assert "P.835 OVRL" in quality_definition("dnsmos_ovrl")
    assert plotted_quality(["dnsmos_sig", "dnsmos_p808"]) == ["dnsmos_p808"]


def test_quality_axes_span_the_metric_or_start_at_zero():
    assert quality_range("dnsmos_ovrl", [2.9, 3.1]) == (1.0, 5.0)
    assert quality_range("stoi", [0.8, 0.9]) == (0.0, 1.0)
    low, high = quality_range("my_score", [40.0, 41.0])
    assert low == 0.0 and high > 41.0


def test_ttfa_axis_turns_log_when_a_fast_backend_would_be_squashed(tmp_path):
    run = write_run(
        tmp_path / "run",
        {"loopback": {"ttfa": jittered(100)}, "cascade": {"ttfa": jittered(6000, spread_ms=300)}},
        settings=FAST,
    )
    data = load_run_folder(run)
    assert (
        log_ttfa_wanted([data]) and not log_ttfa_wanted([data], "linear") and log_ttfa_wanted([data], "log")
    )
    build_report([run], tmp_path / "r")
    assert "The TTFA axis is logarithmic" in (tmp_path / "r" / "report.md").read_text()
    close = write_run(tmp_path / "close", {"a": {"ttfa": jittered(100)}, "b": {"ttfa": jittered(400)}})
    assert not log_ttfa_wanted([load_run_folder(close)])
    assert main(["report", str(run), "--out", str(tmp_path / "lin"), "--ttfa-axis", "linear"]) == 0
    assert "logarithmic" not in (tmp_path / "lin" / "report.md").read_text()


def test_history_puts_each_run_at_its_commit_in_order(tmp_path):
    planted = [(100, "a" * 40, "2026-11-20T00:00:00+00:00"), (110, "b" * 40, "2026-11-21T00:00:00+00:00")]
    planted.append((140, "c" * 40, "2026-11-22T00:00:00+00:00"))
    dirs = []
    for i, (ms, commit, created) in enumerate(reversed(planted)):  # given out of order on purpose
        run = _run(tmp_path / f"run{i}", ms, run_id=f"run{i}")
        _set(run, git={"commit": commit, "dirty": False}, created=created)
        dirs.append(run)
    gate = tmp_path / "gate"  # a gate's folder counts as its two runs
    for side, ms, commit in (("base", 140, "c" * 40), ("candidate", 150, "d" * 40)):
        _set(
            _run(gate / side, ms, run_id=side),
            git={"commit": commit, "dirty": side == "candidate"},
            created="2026-11-23T00:00:00+00:00",
        )
    paths = build_history([*dirs, gate], tmp_path / "h")
    doc = json.loads(paths["json"].read_text())
    assert [c["label"][:8] for c in doc["commits"]] == ["aaaaaaaa", "bbbbbbbb", "cccccccc", "dddddddd"]
    assert doc["commits"][3]["label"].startswith("dddddddd+dirty")
    medians = [p["median"] for p in doc["metrics"]["ttfa_ms"]["loopback"]]
    assert [round(m, -1) for m in medians] == [100, 110, 140, 150]
    assert len(doc["commits"][2]["runs"]) == 2  # two runs at commit c: pooled
    assert "<img" in paths["html"].read_text()
    assert main(["history", str(tmp_path / "nothing"), "--out", str(tmp_path / "h2")]) == 2
