"""report.html in real headless Chromium: every plot renders and the page logs nothing (skipped without chromium)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from synthetic_runs import jittered, write_run

pytest.importorskip("matplotlib", reason="needs the report extra: pip install 's2s-bench[report]'")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "screenshot_report.py"
sys.path.insert(0, str(SCRIPT.parent))
from screenshot_report import find_chromium  # noqa: E402

pytestmark = pytest.mark.skipif(
    find_chromium() is None, reason="chromium not installed (apt-get install -y chromium)"
)


def _shoot(html: Path, png: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(html), str(png), *extra],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_report_opens_in_chromium_with_all_plots_and_no_console_errors(tmp_path):
    from harness.report import build_report

    run = write_run(
        tmp_path / "run",
        {
            "loopback:delay_ms=100": {
                "ttfa": jittered(100),
                "scores": {"dnsmos_ovrl": jittered(3.0, spread_ms=0.2)},
            },
            "cascade": {
                "ttfa": jittered(900, seed=2),
                "scores": {"dnsmos_ovrl": jittered(3.4, spread_ms=0.2)},
                "marks": {"asr_final": jittered(300), "llm_first_token": jittered(600)},
            },
        },
    )
    html = build_report([run], tmp_path / "out")["html"]
    png = tmp_path / "shot.png"
    done = _shoot(html, png)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3/3 images rendered, 0 console messages" in done.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_the_check_fails_on_a_broken_page(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head></head><body><img src='missing.png'>"
        "<script>console.error('planted')</script></body></html>"
    )
    done = _shoot(page, tmp_path / "broken.png")
    assert done.returncode == 1
    assert "only 0 of 1 images rendered" in done.stderr and "planted" in done.stderr
