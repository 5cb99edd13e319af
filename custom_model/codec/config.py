"""The codec's architecture as one dataclass, with named presets (``tiny``, ``small``, ``base``)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CodecConfig:
    """Architecture of a causal SEANet + residual-VQ codec (v1). Units: samples, Hz, channels."""

    version: int = 1  # saved in config.json (folders written before versions existed have none: 1)
    # Signal.
    sample_rate: int = 16000
    channels: int = 1
    # SEANet (encoder order; the decoder mirrors it). hop = prod(strides) samples per latent frame.
    strides: tuple[int, ...] = (2, 4, 5, 8)
    n_filters: int = 32
    channel_mults: tuple[int, ...] = (
        1,
        2,
        4,
        8,
        16,
    )  # one more than strides: channels before/after each stage
    dimension: int = 128  # latent dimension fed to the quantizer
    kernel_size: int = 7  # first conv
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    n_residual_layers: int = 1
    dilation_base: int = 2
    compress: int = 2  # residual blocks' hidden channels = channels / compress
    lstm_layers: int = 2  # 0 = no LSTM
    # Residual VQ (vector-quantize-pytorch ResidualVQ); every keyword is passed explicitly.
    n_q: int = 8
    codebook_size: int = 1024
    codebook_dim: int | None = None  # None = dimension; otherwise VQ projects in and out
    ema_decay: float = 0.99
    kmeans_init: bool = True
    kmeans_iters: int = 10
    threshold_ema_dead_code: int = 2
    commitment_weight: float = 1.0
    quantize_dropout: bool = True  # train on a random number of codebooks: variable bitrate
    quantize_dropout_cutoff_index: int = 0  # at least cutoff + 1 codebooks are kept
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes saved with the config

    def __post_init__(self) -> None:
        if self.version != 1:
            raise ValueError(
                f"CodecConfig is codec v1, got version {self.version}: load it with load_codec()"
            )
        if len(self.channel_mults) != len(self.strides) + 1:
            raise ValueError(
                f"channel_mults {self.channel_mults} must have len(strides) + 1 = {len(self.strides) + 1} entries"
            )
        if self.codebook_size < 2 or self.n_q < 1:
            raise ValueError(f"need n_q >= 1 and codebook_size >= 2, got {self.n_q} x {self.codebook_size}")

    @property
    def hop_length(self) -> int:
        """Samples per latent frame (320 = 20 ms at 16 kHz for strides 2, 4, 5, 8)."""
        return math.prod(self.strides)

    @property
    def frame_rate(self) -> float:
        """Latent frames per second (Hz)."""
        return self.sample_rate / self.hop_length

    @property
    def bitrate_bps(self) -> float:
        """Bits per second with all ``n_q`` codebooks."""
        return self.frame_rate * self.n_q * math.log2(self.codebook_size)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> CodecConfig:
        """A named preset (``tiny``, ``small``, ``base``) with optional field overrides."""
        if name not in PRESETS:
            raise ValueError(f"Unknown codec preset {name!r}; choose one of {', '.join(PRESETS)}")
        return replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CodecConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"Unknown CodecConfig fields {sorted(unknown)}; known: {sorted(known)}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CodecConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


PRESETS: dict[str, CodecConfig] = {
    # Tests: a few thousand weights besides the codebooks; trains a step in well under a second.
    "tiny": CodecConfig(
        n_filters=4, channel_mults=(1, 2, 4, 8, 8), dimension=16, lstm_layers=0, codebook_dim=8
    ),
    # CPU-trainable in an hour or two on one thread; checkpoint well under 15 MB.
    "small": CodecConfig(
        n_filters=8, channel_mults=(1, 2, 4, 8, 16), dimension=64, lstm_layers=1, codebook_dim=32
    ),
    # EnCodec-sized (the seed's): 128-dim latent, channel multipliers 1, 2, 4, 8, 16, 2-layer LSTM. GPUs.
    "base": CodecConfig(n_filters=32, channel_mults=(1, 2, 4, 8, 16), dimension=128, lstm_layers=2),
}
