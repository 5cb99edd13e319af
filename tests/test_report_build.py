"""Reports from hand-built runs with planted values: what a reader sees must match what was planted."""

from __future__ import annotations

import csv
import json
import re

import pytest
from synthetic_runs import jittered, write_run

pytest.importorskip("matplotlib", reason="needs the report extra: pip install 's2s-bench[report]'")

from harness.cli import main  # noqa: E402
from harness.report import build_report  # noqa: E402
from harness.report.plots import pareto_front  # noqa: E402

MARKS = {
    "asr_final": jittered(300, seed=3),
    "llm_first_token": jittered(600, seed=4),
    "tts_first_audio": jittered(850, seed=5),
}


@pytest.fixture(scope="module")
def three_backends(tmp_path_factory):
    return write_run(
        tmp_path_factory.mktemp("report") / "run",
        {
            "loopback:delay_ms=100": {
                "ttfa": jittered(100, seed=1),
                "options": {"delay_ms": 100.0},
                "scores": {"dnsmos_ovrl": jittered(3.0, spread_ms=0.2), "wer": jittered(0.1, spread_ms=0.05)},
            },
            "cascade": {
                "ttfa": jittered(900, seed=2)[:19] + [None],
                "silence_ms": 20,
                "marks": MARKS,
                "scores": {"dnsmos_ovrl": jittered(3.4, spread_ms=0.2), "wer": jittered(0.3, spread_ms=0.05)},
            },
            "custom:size=base": {
                "ttfa": jittered(400, seed=6),
                "latency_only": True,
                "scores": {"dnsmos_ovrl": jittered(1.1, spread_ms=0.1)},
            },
        },
    )


@pytest.fixture(scope="module")
def built(three_backends):
    """The report of ``three_backends``, built once for the tests that only read it."""
    return build_report([three_backends], three_backends.parent / "out")


def _row(md: str, backend: str) -> list[str]:
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {backend} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_summary_table_shows_planted_latency_failures_and_latency_only_label(built):
    paths = built
    md = paths["markdown"].read_text()
    header = [
        c.strip()
        for c in next(ln for ln in md.splitlines() if ln.startswith("| backend |")).strip("|").split("|")
    ]
    loop = dict(zip(header, _row(md, "loopback:delay_ms=100"), strict=False))
    p50 = float(loop["TTFA p50 (ms)"].split()[0])
    assert 95 <= p50 <= 105 and loop["TTFA p50 (ms)"].endswith("n=20") and "[" in loop["TTFA p95 (ms)"]
    assert 2.9 < float(loop["dnsmos_ovrl"].split()[0]) < 3.1
    cascade = dict(zip(header, _row(md, "cascade"), strict=False))
    assert cascade["answered"] == "19/20 (95%) [76, 99]" and cascade["failures"] == "1 (crash 1)"
    assert cascade["no answer"] == "0" and cascade["truncated"] == "0"
    # the failed turn is censored at its wait limit (30 s): S(t) is 1/2 between the 10th and 11th answers of 20
    # turns, so the KM median is their midpoint (the plain p50 is over the 19 answered turns only)
    km, answered = cascade["TTFA KM p50 (ms)"], sorted(jittered(900, seed=2)[:19])
    assert km.endswith("n=20") and float(km.split()[0]) == pytest.approx(
        (answered[9] + answered[10]) / 2, abs=0.05
    )
    # 19/20 answered: S(t) reaches 0.05 exactly at the last answer; its interval's top is not reached
    km95 = cascade["TTFA KM p95 (ms)"]
    assert float(km95.split()[0]) == pytest.approx(max(jittered(900, seed=2)[:19]), abs=0.05)
    assert "not reached]" in km95
    assert cascade["TTFA p50 (ms)"].endswith("n=19")
    assert float(cascade["TTFB p50 (ms)"].split()[0]) == pytest.approx(
        float(cascade["TTFA p50 (ms)"].split()[0]) - 20, abs=0.2
    )
    custom = dict(zip(header, _row(md, "custom:size=base"), strict=False))
    assert custom["dnsmos_ovrl"] == custom["wer"] == "random weights: latency only"
    # one 0.5 s chunk: no generation time after the first chunk, RTF 0; the cascade's 20 ms of silence before its
    # audible chunk: 20 ms / 0.51 s of output
    assert float(loop["RTF mean"].split()[0]) == pytest.approx(0.0, abs=1e-9)
    assert float(cascade["RTF mean"].split()[0]) == pytest.approx(0.02 / 0.51, abs=0.001)
    assert loop["stalls mean"].startswith("0.00")


def test_report_has_every_section_plot_and_definition(built):
    paths = built
    md = paths["markdown"].read_text()
    for section in (
        "## Summary",
        "## End of speech",
        "## Time to first audio",
        "## Stage breakdown",
        "## dnsmos_ovrl vs TTFA",
        "## wer vs TTFA",
        "## Failures",
        "## Per utterance",
        "## Runs: machine, versions, settings",
        "## Definitions",
    ):
        assert section in md
    assert "when the first audible output sample is heard - speech_end" in md and "Test CPU" in md
    for img in re.findall(r"\]\((img/[^)]+)\)", md):
        assert (paths["markdown"].parent / img).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = paths["html"].read_text()
    assert page.count("src='data:image/png;base64,") == 4 and "<script" not in page and "img/" not in page
    doc = json.loads(paths["json"].read_text())
    assert doc["schema"] == "s2s-bench.report/1" and len(doc["summary_table"]) == 3


def test_per_utterance_csv_has_every_row_and_hides_latency_only_quality(built):
    paths = built
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == 60
    failed = [r for r in rows if r["status"] == "failed"]
    assert [(r["backend"], r["utterance"], r["ttfa_ms"]) for r in failed] == [("cascade", "utt019", "")]
    assert all(r["dnsmos_ovrl"] == "" for r in rows if r["backend"] == "custom:size=base")
    first = next(r for r in rows if r["backend"] == "cascade")
    assert float(first["mark.asr_final"]) == pytest.approx(MARKS["asr_final"][0], abs=0.01)


def test_two_runs_are_compared_side_by_side_without_quality(tmp_path):
    a = write_run(tmp_path / "a", {"loopback": {"ttfa": jittered(100)}}, run_id="run-a")
    b = write_run(tmp_path / "b", {"loopback": {"ttfa": jittered(150)}}, run_id="run-b")
    paths = build_report([a, b], tmp_path / "out", title="A vs B")
    md = paths["markdown"].read_text()
    assert md.startswith("# A vs B")
    assert "| loopback (run-a) |" in md and "| loopback (run-b) |" in md
    assert "n/a (no quality suite in these runs)" in md and "No quality-vs-latency plot" in md
    assert "No backend emitted stage marks" in md


def test_pareto_front_keeps_only_undominated_points():
    pts = [(100, 3.0), (900, 3.4), (500, 2.9), (400, 3.2)]
    assert pareto_front(pts, higher_is_better=True) == [0, 3, 1]
    assert pareto_front([(100, 0.3), (200, 0.1), (300, 0.2)], higher_is_better=False) == [0, 1]


def test_report_command_writes_files_and_names_a_bad_run(three_backends, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["report", str(three_backends), "--out", str(out)]) == 0
    assert (out / "report.html").exists() and (out / "utterances.csv").exists()
    assert main(["report", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "missing" in capsys.readouterr().err
