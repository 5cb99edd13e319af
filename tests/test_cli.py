"""The command line as a user types it."""

import json
import subprocess
import sys

from harness.cli import main


def test_help_imports_nothing_heavy():
    code = (
        "import sys, harness.cli; harness.cli.build_parser(); "
        "heavy = [m for m in ('numpy', 'torch', 'transformers', 'onnxruntime', 'matplotlib', 'pandas') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_help_page_formats():
    """``s2s-bench --help`` and each command's ``--help`` render (a bare ``%`` in a help string breaks them)."""
    import argparse

    from harness.cli import build_parser

    def walk(parser, path):
        assert parser.format_help(), path  # raises ValueError on a bad % in any help string
        seen = [path]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    seen += walk(sub, f"{path} {name}")
        return seen

    pages = walk(build_parser(), "s2s-bench")
    assert "s2s-bench run" in pages and "s2s-bench data collect run" in pages, pages


def test_backends_lists_loopback_with_options(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "loopback" in out and "delay_ms=0.0" in out


def test_run_then_rescore_check(tmp_path, capsys):
    out = tmp_path / "r"
    assert (
        main(
            ["run", "-b", "loopback:delay_ms=5", "--limit", "3", "--pacing", "fast", "--out", str(out), "-q"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| loopback:delay_ms=5 | 3/3 (100%) |" in printed
    meta = json.loads((out / "run.json").read_text())
    assert meta["schema"] == "s2s-bench.run/1" and meta["status"] == "complete"
    assert meta["machine"]["cpu_count"] and meta["versions"]["s2s-bench"]
    assert meta["backends"][0]["options"]["delay_ms"] == 5.0
    assert main(["rescore", str(out), "--check"]) == 0
    assert "matches run.json: yes" in capsys.readouterr().out


def test_rescore_check_notices_a_tampered_summary(tmp_path, capsys):
    out = tmp_path / "r"
    main(["run", "-b", "loopback", "--limit", "2", "--pacing", "fast", "--out", str(out), "-q"])
    meta = json.loads((out / "run.json").read_text())
    meta["summary"]["loopback"]["ttfa_ms"]["p50"] = 1.0
    (out / "run.json").write_text(json.dumps(meta))
    assert main(["rescore", str(out), "--check"]) == 1


def test_usage_errors_exit_2_with_the_reason(tmp_path, capsys):
    assert main(["run", "-b", "nope", "--out", str(tmp_path / "x"), "-q"]) == 2
    assert "Unknown backend 'nope'; known backends:" in capsys.readouterr().err
    assert main(["run", "-b", "loopback:delay_ms=x", "--out", str(tmp_path / "y"), "-q"]) == 2
    assert main(["run", "-b", "loopback", "--data", "no-such-set", "--out", str(tmp_path / "z"), "-q"]) == 2
    assert "Unknown dataset 'no-such-set'" in capsys.readouterr().err


def test_run_suite_quality_scores_the_outputs(tmp_path, capsys):
    out = tmp_path / "q"
    assert (
        main(
            [
                "run",
                "-b",
                "loopback",
                "--suite",
                "quality",
                "--limit",
                "1",
                "--pacing",
                "fast",
                "--out",
                str(out),
                "-q",
                "--score-workers",
                "1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| loopback | pesq | 4.644" in printed  # loopback returns its input: PESQ-WB at the scale's top
    meta = json.loads((out / "run.json").read_text())
    assert set(meta["summary"]["loopback"]["metrics"]) >= {"pesq", "stoi", "dnsmos_ovrl", "speaker_sim"}
