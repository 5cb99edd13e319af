"""What a fresh machine needs: bare ``pytest`` works (not only ``python -m pytest``), and the Debian set-up proves
festival speaks Telugu or says exactly what is broken."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.datasets import festival

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "install-system-deps.sh"


def test_bare_pytest_imports_the_shared_test_helpers():
    pytest_script = Path(sys.executable).parent / "pytest"
    if not pytest_script.exists():
        pytest.skip(f"no pytest console script beside {sys.executable}")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [str(pytest_script), "--collect-only", "-q", "-p", "no:cacheprovider", "tests/test_server_protocol.py",
         "tests/test_server_robustness.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "ModuleNotFoundError" not in proc.stdout


def check(tmp_path, voice_dir: Path, phoneset: Path, fake_output: str | None = None):
    env = {**os.environ, "S2S_FESTIVAL_VOICE_DIR": str(voice_dir), "S2S_FESTIVAL_PHONESET": str(phoneset)}
    if fake_output is not None:  # a festival that fails the way a broken install does
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        fake = bin_dir / "festival"
        fake.write_text(f"#!/bin/sh\necho '{fake_output}' >&2\nexit 1\n", encoding="utf-8")
        fake.chmod(0o755)
        env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return subprocess.run(
        ["bash", str(SCRIPT), "--check"], env=env, capture_output=True, text=True, timeout=180
    )


def test_the_check_names_a_missing_festival_te(tmp_path):
    (tmp_path / "voice").mkdir()
    proc = check(tmp_path, tmp_path / "voice", tmp_path / "no" / "telugu_phones.scm", fake_output="unused")
    assert proc.returncode == 1
    assert "BROKEN: festival-te is missing" in proc.stdout and "apt-get install festival-te" in proc.stdout


def test_the_check_says_what_festival_said_when_it_cannot_speak(tmp_path):
    (tmp_path / "voice").mkdir()
    (tmp_path / "telugu_phones.scm").write_text("", encoding="utf-8")
    said = "SIOD ERROR: could not open file telugu_phones.scm"
    proc = check(tmp_path, tmp_path / "voice", tmp_path / "telugu_phones.scm", fake_output=said)
    assert proc.returncode == 1
    assert "festival exited with 1" in proc.stdout and "festival-te's files cannot be read" in proc.stdout
    assert said in proc.stdout


@pytest.mark.skipif(not festival.festival_available()[0], reason=festival.festival_available()[1])
def test_the_check_hears_festival_speak_telugu(tmp_path):
    proc = check(tmp_path, festival.VOICE_DIR, festival.PHONESET)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "festival: ok: speaks Telugu" in proc.stdout
