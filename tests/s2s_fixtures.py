"""Shared test material for the S2S model and the ``custom`` backend: tiny *random* models and toy QA pairs.

Nothing here is trained: the codec and S2S model have random weights, built from the real classes and saved with
their own ``save_pretrained`` so that loading goes through the code path users run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

SR = 16000


def toy_wave(seconds: float, freq: float, seed: int) -> np.ndarray:
    """A tone with a little noise and a fade, loud enough to be audible (about -12 dBFS)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
    return (x * fade).astype(np.float32)


def write_toy_pairs(root: Path, n_train: int = 4, n_test: int = 2) -> Path:
    """Write question/answer WAVs and a manifest (splits train/test); returns the manifest path."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n_train + n_test):
        q, a = root / f"q{i}.wav", root / f"a{i}.wav"
        sf.write(q, toy_wave(0.3 + 0.04 * i, 200 + 40 * i, i), SR)
        sf.write(a, toy_wave(0.25 + 0.02 * i, 500 + 60 * i, 100 + i), SR)
        split = "train" if i < n_train else "test"
        lines.append(
            json.dumps(
                dict(
                    id=f"pair{i}",
                    audio_path=q.name,
                    response_audio_path=a.name,
                    split=split,
                    text=f"q{i}",
                    response_text=f"a{i}",
                )
            )
        )
    manifest = root / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def save_tiny_codec(directory: Path, codebook_size: int = 64) -> Path:
    """A tiny random codec; a small codebook keeps the S2S embedding tables (and the tests) small."""
    from custom_model.codec import Codec, CodecConfig

    torch.manual_seed(0)
    codec = Codec(CodecConfig.preset("tiny", codebook_size=codebook_size)).eval()
    return codec.save_pretrained(directory)


def save_tiny_s2s(directory: Path, card: int = 1024, **overrides) -> Path:
    from custom_model.s2s import S2SModel, config_preset

    torch.manual_seed(0)
    return S2SModel(config_preset("tiny", card=card, **overrides)).save_pretrained(directory)
