"""Causal SEANet encoder and decoder (EnCodec's convolutional autoencoder), built from streaming convolutions.

Encoder: conv(kernel 7) -> for each stride s: [residual blocks, ELU, conv(kernel 2s, stride s), channels x2]
-> [LSTM] -> ELU -> conv(kernel 7) to the latent dimension. The decoder mirrors it with transposed convolutions.
With strides (2, 4, 5, 8) one latent frame is 320 samples (20 ms at 16 kHz).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import CodecConfig
from .streaming import (
    State,
    StreamingConv1d,
    StreamingConvTranspose1d,
    StreamingLSTM,
    StreamingModule,
    StreamingSequential,
)


class ResidualBlock(StreamingModule):
    """ELU -> dilated conv (kernel k) -> ELU -> 1x1 conv, added to the (identity) shortcut."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, compress: int) -> None:
        super().__init__()
        hidden = dim // compress
        self.block = StreamingSequential(
            nn.ELU(),
            StreamingConv1d(dim, hidden, kernel_size, dilation=dilation),
            nn.ELU(),
            StreamingConv1d(hidden, dim, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)

    def init_state(self, batch_size: int, device: torch.device | None = None) -> State:
        return self.block.init_state(batch_size, device)

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        y, state = self.block.step(x, state)
        return x + y, state


def _residual_stack(cfg: CodecConfig, dim: int) -> list[nn.Module]:
    return [
        ResidualBlock(dim, cfg.residual_kernel_size, cfg.dilation_base**j, cfg.compress)
        for j in range(cfg.n_residual_layers)
    ]


class SEANetEncoder(StreamingSequential):
    """``[B, 1, T]`` (T a multiple of the hop) -> ``[B, dimension, T / hop]``."""

    def __init__(self, cfg: CodecConfig) -> None:
        chans = [cfg.n_filters * m for m in cfg.channel_mults]
        layers: list[nn.Module] = [StreamingConv1d(cfg.channels, chans[0], cfg.kernel_size)]
        for i, stride in enumerate(cfg.strides):
            layers += _residual_stack(cfg, chans[i])
            layers += [nn.ELU(), StreamingConv1d(chans[i], chans[i + 1], 2 * stride, stride=stride)]
        if cfg.lstm_layers:
            layers.append(StreamingLSTM(chans[-1], cfg.lstm_layers))
        layers += [nn.ELU(), StreamingConv1d(chans[-1], cfg.dimension, cfg.last_kernel_size)]
        super().__init__(*layers)


class SEANetDecoder(StreamingSequential):
    """``[B, dimension, F]`` -> ``[B, 1, F * hop]``."""

    def __init__(self, cfg: CodecConfig) -> None:
        chans = [cfg.n_filters * m for m in cfg.channel_mults]
        layers: list[nn.Module] = [StreamingConv1d(cfg.dimension, chans[-1], cfg.kernel_size)]
        if cfg.lstm_layers:
            layers.append(StreamingLSTM(chans[-1], cfg.lstm_layers))
        for i, stride in reversed(list(enumerate(cfg.strides))):
            layers += [nn.ELU(), StreamingConvTranspose1d(chans[i + 1], chans[i], 2 * stride, stride)]
            layers += _residual_stack(cfg, chans[i])
        layers += [nn.ELU(), StreamingConv1d(chans[0], cfg.channels, cfg.last_kernel_size)]
        super().__init__(*layers)
