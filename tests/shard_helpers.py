"""Data for the shard, merge and Ray executor tests: a manifest of short distinct tone bursts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_manifest(folder: Path, n: int) -> Path:
    """``n`` distinct short tone bursts with silence around them (so every one has a speech end)."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        t = np.arange(int(0.3 * 16000)) / 16000
        tone = (0.3 * np.sin(2 * np.pi * (180 + 25 * i) * t)).astype(np.float32)
        audio = np.concatenate([np.zeros(800, np.float32), tone, np.zeros(2400, np.float32)])
        sf.write(folder / f"u{i}.wav", audio, 16000)
        lines.append(
            json.dumps({"id": f"utt-{i:02d}", "audio": f"u{i}.wav", "text": "ఒకటి"}, ensure_ascii=False)
        )
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "manifest.jsonl"
