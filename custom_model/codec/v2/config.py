"""Codec v2's architecture as one dataclass with named presets (``tiny``, ``small``, ``base``).

Units: samples, Hz, channels. ``version`` is saved in ``config.json`` so a folder says which codec class loads it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CodecV2Config:
    """A frame-rate codec: causal STFT features -> ConvNeXt encoder -> factorised RVQ -> ConvNeXt decoder -> iSTFT."""

    version: int = 2
    sample_rate: int = 16000
    frame_size: int = 320  # samples per code frame: 20 ms at 16 kHz
    sub_hop: int = 80  # samples per sub-frame (the STFT hop); frame_size / sub_hop sub-frames per frame
    # Encoder input: a causal STFT (window of analysis_n_fft samples ending at each sub-frame's last sample).
    analysis_n_fft: int = 320
    complex_power: float = 0.3  # besides the log magnitude, the power-compressed spectrum |X|^p e^{i phase}
    # Encoder: sub-frame blocks, then the sub-frames of a frame are merged and frame-rate blocks follow.
    enc_sub_dim: int = 128
    enc_sub_layers: int = 1
    enc_sub_kernel: int = 5
    enc_dim: int = 192
    enc_layers: int = 3
    enc_kernel: int = 3
    latent_dim: int = 192
    # Factorised residual VQ (DAC): each codebook looks up an L2-normalised codebook_dim projection.
    n_q: int = 8
    codebook_size: int = 1024
    codebook_dim: int = 8
    quantizer_dropout: float = 0.5  # share of training items coded with a random number (1..n_q) of codebooks
    commitment_weight: float = 0.25
    codebook_weight: float = 1.0
    # Decoder: frame-rate blocks, split into sub-frames, sub-frame blocks, then magnitude + phase per sub-frame.
    dec_dim: int = 192
    dec_layers: int = 4
    dec_kernel: int = 5
    dec_sub_dim: int = 128
    dec_sub_layers: int = 2
    dec_sub_kernel: int = 5
    ffn_mult: int = 3
    # Output: inverse STFT with a Hann window of synthesis_n_fft samples starting at each sub-frame's first sample.
    synthesis_n_fft: int = 160
    max_log_magnitude: float = 6.0
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes saved with the config

    def __post_init__(self) -> None:
        if self.version != 2:
            raise ValueError(f"CodecV2Config needs version 2, got {self.version}")
        if self.frame_size % self.sub_hop:
            raise ValueError(f"frame_size {self.frame_size} must be a multiple of sub_hop {self.sub_hop}")
        if self.synthesis_n_fft % self.sub_hop or self.synthesis_n_fft < 2 * self.sub_hop:
            raise ValueError(
                f"synthesis_n_fft {self.synthesis_n_fft} must be a multiple of sub_hop {self.sub_hop}, at least 2x"
            )
        if self.analysis_n_fft < self.sub_hop:
            raise ValueError(f"analysis_n_fft {self.analysis_n_fft} must be >= sub_hop {self.sub_hop}")
        if self.codebook_size < 2 or not 1 <= self.n_q:
            raise ValueError(f"need n_q >= 1 and codebook_size >= 2, got {self.n_q} x {self.codebook_size}")
        if not 0.0 <= self.quantizer_dropout <= 1.0:
            raise ValueError(f"quantizer_dropout must be in [0, 1], got {self.quantizer_dropout}")

    @property
    def hop_length(self) -> int:
        """Samples per code frame (the name v1 uses)."""
        return self.frame_size

    @property
    def sub_frames(self) -> int:
        """Sub-frames (STFT hops) per code frame."""
        return self.frame_size // self.sub_hop

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.frame_size

    @property
    def bitrate_bps(self) -> float:
        return self.frame_rate * self.n_q * math.log2(self.codebook_size)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> CodecV2Config:
        """A named preset (``tiny``, ``small``, ``base``) with optional field overrides."""
        if name not in V2_PRESETS:
            raise ValueError(f"Unknown codec v2 preset {name!r}; choose one of {', '.join(V2_PRESETS)}")
        return replace(V2_PRESETS[name], **overrides)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CodecV2Config:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"Unknown CodecV2Config fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


V2_PRESETS: dict[str, CodecV2Config] = {
    # Tests: tiny widths, same structure (sub-frame and frame-rate blocks, 8 x 1024 codes).
    "tiny": CodecV2Config(
        enc_sub_dim=16,
        enc_dim=24,
        enc_layers=1,
        latent_dim=16,
        dec_dim=24,
        dec_layers=1,
        dec_sub_dim=16,
        dec_sub_layers=1,
        ffn_mult=2,
    ),
    # One CPU: 2.3 M parameters; trains at 0.25-1 s per step (batch 8 x 1 s) on one thread; a 20 ms frame encodes
    # + decodes in ~1.8 ms of one thread (RTF ~0.09, see reports/codec.md).
    "small": CodecV2Config(),
    # GPUs: wider and deeper.
    "base": CodecV2Config(
        enc_sub_dim=256,
        enc_sub_layers=2,
        enc_dim=512,
        enc_layers=4,
        latent_dim=512,
        dec_dim=512,
        dec_layers=8,
        dec_sub_dim=256,
        dec_sub_layers=3,
    ),
}
