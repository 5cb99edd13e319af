"""The browser demo in real headless Chromium (Debian's), driven by Playwright, with the fake microphone fed from a
wav file: the page streams the "speech" to the server (loopback), plays the streamed answer and shows a TTFA.

Needs /usr/bin/chromium (``apt-get install -y chromium``); never ``playwright install`` (no downloads here).
Set ``S2S_DEMO_SCREENSHOT=path.png`` to keep a screenshot of the page (docs/img/demo.png is made this way).
"""

import os
import re
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "Debian's chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)",
        allow_module_level=True,
    )
pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install 's2s-bench[demo]')"
)
pytest.importorskip("fastapi")

from harness.data import load_utterances  # noqa: E402
from harness.server.serving import ServerThread, load_backend  # noqa: E402
from tests.server_helpers import wait_sessions_freed  # noqa: E402


def chromium_args(wav: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    ]


@pytest.fixture
def speech_wav(tmp_path) -> Path:
    """A short speech-like clip (synthetic-clips, made by code) with silence around it, 16 kHz pcm16."""
    utt = load_utterances("synthetic-clips", limit=1)[0]
    clip = utt.load_audio(16000)
    pad = np.zeros(8000, np.float32)
    path = tmp_path / "mic.wav"
    import soundfile as sf

    sf.write(str(path), np.concatenate([pad, clip, pad]), 16000, subtype="PCM_16")
    return path


def test_demo_streams_mic_to_server_and_shows_ttfa(speech_wav, tmp_path):
    from playwright.sync_api import sync_playwright

    with ServerThread(load_backend("loopback:delay_ms=100")) as srv, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=chromium_args(speech_wav),
            ignore_default_args=["--mute-audio"],
        )
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(srv.http_url + "/")
            page.click("#talk")
            page.wait_for_function("window.s2sDemo.talking === true", timeout=15000)
            page.wait_for_timeout(2500)  # the fake microphone plays the wav (looped) meanwhile
            page.click("#end")
            page.wait_for_function("document.body.dataset.done === '1'", timeout=20000)
            page.wait_for_function("document.getElementById('ttfa').dataset.ms !== undefined", timeout=10000)
            ttfa_text = page.inner_text("#ttfa")
            received = int(page.inner_text("#received"))
            energy = page.evaluate(
                "Math.max(...window.s2sDemo.chunks.map(c => Math.max(...c.map(Math.abs))))"
            )
            if os.environ.get("S2S_DEMO_SCREENSHOT"):
                page.screenshot(path=os.environ["S2S_DEMO_SCREENSHOT"], full_page=True)
        finally:
            context.close()
        wait_sessions_freed(srv.http_url)
    assert not errors, errors
    assert re.fullmatch(r"-?\d+ ms", ttfa_text), ttfa_text
    # causality, not speed: loopback holds its answer 100 ms after it got end_of_turn, which the page sent at t=0
    assert float(ttfa_text.split()[0]) >= 90, f"TTFA {ttfa_text} is shorter than the backend's own delay"
    assert received > 1600, f"only {received} answer samples came back"
    assert energy > 0.01, "the answer came back silent"
