"""Training the tiny codec (random init, synthetic clips): a few steps, SIGTERM, resume, export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("vector_quantize_pytorch")

from custom_model.codec import Codec  # noqa: E402
from custom_model.train_codec import main as train_main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--preset", "tiny", "--data", "synthetic-clips", "--threads", "1", "--no-tensorboard"]


def logged_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def adam_steps(checkpoint: dict) -> set[int]:
    return {int(s["step"]) for s in checkpoint["optimizers"]["codec"]["state"].values()}


def test_sigterm_saves_then_rerun_resumes_with_optimizer_state(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "custom_model.train_codec", *ARGS, "--out", str(run), "--max-steps", "10000"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (run / "metrics.jsonl").exists() and max(logged_steps(run), default=0) >= 3:
                break
            time.sleep(0.2)
        assert proc.poll() is None, f"training exited early:\n{proc.stdout.read()}"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "saving a checkpoint" in output
    saved = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    stopped_at = saved["step"]
    assert stopped_at >= 3 and stopped_at == max(logged_steps(run))
    assert adam_steps(saved) == {stopped_at}

    # Same command again: resumes at the saved step and keeps the optimizer's state (Adam's step counters go on).
    train_main([*ARGS, "--out", str(run), "--max-steps", str(stopped_at + 2)])
    resumed = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert resumed["step"] == stopped_at + 2
    assert adam_steps(resumed) == {stopped_at + 2}
    assert logged_steps(run)[-2:] == [stopped_at + 1, stopped_at + 2]
    assert resumed["others"]["ema"]["num_updates"] == stopped_at + 2

    # The EMA export loads through the user's code path and codes audio.
    codec = Codec.from_pretrained(run / "export")
    codes = codec.encode(torch.randn(1, 1, 1000) * 0.1)
    assert codes.shape == (1, 8, 4)
    exported = torch.load(run / "export" / "model.pt", weights_only=True)
    assert exported["extra"]["step"] == stopped_at + 2 and exported["extra"]["weights"] == "ema"


def test_export_to_writes_a_loadable_codec(tmp_path):
    run = tmp_path / "run"
    train_main([*ARGS, "--out", str(run), "--max-steps", "2"])
    train_main(["--out", str(run), "--export-to", str(tmp_path / "exp")])
    codec = Codec.from_pretrained(tmp_path / "exp")
    assert codec.decode(codec.encode(torch.randn(1, 1, 640) * 0.1)).shape == (1, 1, 640)
