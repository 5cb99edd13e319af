"""A unit HiFi-GAN vocoder in plain torch: discrete speech units (50 Hz) -> 16 kHz waveform.

The architecture of fairseq's ``CodeHiFiGANVocoder`` (the one SpeechGPT's released vocoder uses): a unit embedding
table, an optional duration predictor (for de-duplicated units), then HiFi-GAN's generator: a pre-convolution,
transposed-convolution upsampling stages (x320 in total: 50 units/s -> 16000 samples/s), each followed by
multi-receptive-field residual blocks, and a post-convolution with tanh.

Parameter names follow fairseq's, and :func:`load_unit_vocoder` folds fairseq's weight-norm pairs
(``weight_g``/``weight_v``) into plain weights, so a converted fairseq checkpoint can be loaded as a state dict.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

LRELU_SLOPE = 0.1


@dataclass
class UnitVocoderConfig:
    """Sizes of the vocoder; field names are fairseq's ``config.json`` keys. Defaults: the released size."""

    num_embeddings: int = 1000
    embedding_dim: int = 128
    upsample_rates: list[int] = field(default_factory=lambda: [5, 4, 4, 2, 2])
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [11, 8, 8, 4, 4])
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(
        default_factory=lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    )
    dur_prediction: bool = False
    sampling_rate: int = 16000

    @property
    def hop(self) -> int:
        """Output samples per unit."""
        hop = 1
        for rate in self.upsample_rates:
            hop *= rate
        return hop

    @classmethod
    def from_dict(cls, raw: dict) -> UnitVocoderConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


class ResBlock(nn.Module):
    """HiFi-GAN residual block: pairs of (dilated conv, conv), each pair added back to its input."""

    def __init__(self, channels: int, kernel: int, dilations: list[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=(kernel * d - d) // 2)
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2) for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv1, conv2 in zip(self.convs1, self.convs2, strict=True):
            y = conv2(F.leaky_relu(conv1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
            x = x + y
        return x


class DurationPredictor(nn.Module):
    """Log-duration (in units) per de-duplicated unit: two conv + layer-norm blocks and a projection."""

    def __init__(self, dim: int, kernel: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv1d(dim, dim, kernel, padding=(kernel - 1) // 2), nn.ReLU())
        self.ln1 = nn.LayerNorm(dim)
        self.conv2 = nn.Sequential(nn.Conv1d(dim, dim, kernel, padding=1), nn.ReLU())
        self.ln2 = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, T)
        x = self.ln1(self.conv1(x).transpose(1, 2)).transpose(1, 2)
        x = self.ln2(self.conv2(x).transpose(1, 2))
        return self.proj(x).squeeze(-1)


class UnitHiFiGAN(nn.Module):
    """Units (B, T) int64 in [0, num_embeddings) -> waveform (B, T' * hop) float in [-1, 1]."""

    def __init__(self, config: UnitVocoderConfig) -> None:
        super().__init__()
        self.config = config
        self.dict = nn.Embedding(config.num_embeddings, config.embedding_dim)
        self.dur_predictor = DurationPredictor(config.embedding_dim) if config.dur_prediction else None
        ch = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(config.embedding_dim, ch, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (rate, kernel) in enumerate(
            zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True)
        ):
            c_in, c_out = ch // 2**i, ch // 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose1d(c_in, c_out, kernel, rate, padding=(kernel - rate) // 2))
            for k, dilations in zip(
                config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True
            ):
                self.resblocks.append(ResBlock(c_out, k, dilations))
        self.conv_post = nn.Conv1d(ch // 2 ** len(config.upsample_rates), 1, 7, padding=3)

    def forward(self, units: torch.Tensor) -> torch.Tensor:
        x = self.dict(units).transpose(1, 2)  # (B, C, T)
        if self.dur_predictor is not None:
            if x.shape[0] != 1:
                raise ValueError(
                    f"Expected one utterance with dur_prediction but got a batch of {x.shape[0]}"
                )
            durations = torch.clamp(torch.round(torch.exp(self.dur_predictor(x)) - 1).long(), min=1)
            x = torch.repeat_interleave(x, durations.view(-1), dim=2)
        x = self.conv_pre(x)
        n_kernels = len(self.config.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * n_kernels : (i + 1) * n_kernels]
            x = sum(block(x) for block in blocks) / n_kernels
        x = self.conv_post(F.leaky_relu(x))
        return torch.tanh(x).squeeze(1)


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace fairseq's ``X.weight_g``/``X.weight_v`` pairs by ``X.weight = g * v / ||v||`` (norm over dims 1..)."""
    out = {}
    for key, value in state.items():
        if key.endswith("weight_v") and key[: -len("_v")] + "_g" in state:
            stem = key[: -len("_v")]
            g = state[stem + "_g"]
            norm = value.flatten(1).norm(dim=1).view(-1, *([1] * (value.dim() - 1)))
            out[stem] = g * value / norm
        elif not (key.endswith("weight_g") and key[: -len("_g")] + "_v" in state):
            out[key] = value
    return out


def save_unit_vocoder(model: UnitHiFiGAN, path: str | Path) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into the folder ``path``."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(asdict(model.config), indent=2))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "model.safetensors"))
    return path


def load_unit_vocoder(path: str | Path, device: torch.device | str = "cpu") -> UnitHiFiGAN:
    """Load a folder with ``config.json`` and ``model.safetensors`` (or a torch checkpoint ``*.pt`` holding a
    ``generator`` state dict, as fairseq writes them); weight-norm pairs are folded."""
    path = Path(path)
    config = UnitVocoderConfig.from_dict(json.loads((path / "config.json").read_text()))
    if (path / "model.safetensors").exists():
        from safetensors.torch import load_file

        state = load_file(str(path / "model.safetensors"))
    else:
        checkpoints = sorted(path.glob("*.pt")) + sorted(path.glob("g_*"))
        if not checkpoints:
            raise FileNotFoundError(
                f"{path}: expected model.safetensors or a *.pt / g_* generator checkpoint"
            )
        state = torch.load(checkpoints[0], map_location="cpu", weights_only=True)
        state = state.get("generator", state)
    model = UnitHiFiGAN(config)
    model.load_state_dict(fold_weight_norm(state))
    return model.to(device).eval()
