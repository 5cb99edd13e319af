"""Causal convolutions that run offline on a whole signal or streaming, chunk by chunk, with identical output.

Anchors: audiocraft's ``StreamableConv1d`` and moshi's ``StreamingConv1d``. Each streaming module has

- ``forward(x)``: offline, on a whole signal ``[B, C, T]``;
- ``init_state(batch_size)``: the state a new stream starts from;
- ``step(x, state) -> (y, state)``: one chunk, returning the new state (modules hold no stream state themselves,
  so any number of streams can share one model).

Conv: offline the input is left-padded with ``k_eff - stride`` zeros (``k_eff = (kernel - 1) * dilation + 1``), so
``T`` samples give exactly ``T / stride`` outputs and output ``j`` depends on inputs up to ``(j + 1) * stride - 1``.
Streaming keeps the last unconsumed input samples (``k_eff - stride`` of them when chunks are multiples of the
stride) and starts from the same zeros. Transposed conv: offline the last ``kernel - stride`` samples are trimmed;
streaming keeps that overlap (minus the bias) and adds it to the start of the next chunk.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

State = Any


class StreamingModule(nn.Module):
    """A module with an offline ``forward`` and a stateful ``step``; stateless by default."""

    def init_state(self, batch_size: int, device: torch.device | None = None) -> State:
        return None

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        return self(x), state


class StreamingConv1d(StreamingModule):
    """Causal, weight-normalised ``Conv1d``; ``T`` input samples (a multiple of ``stride``) give ``T / stride``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv = weight_norm(nn.Conv1d(in_ch, out_ch, kernel_size, stride=stride, dilation=dilation))
        self.stride = stride
        self.kernel_eff = (kernel_size - 1) * dilation + 1
        self.pad = self.kernel_eff - stride
        if self.pad < 0:
            raise ValueError(f"kernel_size {kernel_size} (dilation {dilation}) must be >= stride {stride}")

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % self.stride:
            raise ValueError(f"input length {x.shape[-1]} is not a multiple of the stride {self.stride}")
        return self.conv(nn.functional.pad(x, (self.pad, 0)))

    def init_state(self, batch_size: int, device: torch.device | None = None) -> State:
        return torch.zeros(batch_size, self.conv.in_channels, self.pad, device=device)

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        buf = torch.cat([state.to(x.dtype), x], dim=-1)
        n_out = (
            (buf.shape[-1] - self.kernel_eff) // self.stride + 1 if buf.shape[-1] >= self.kernel_eff else 0
        )
        if n_out == 0:
            return x.new_zeros(x.shape[0], self.conv.out_channels, 0), buf
        used = (n_out - 1) * self.stride + self.kernel_eff
        y = self.conv(buf[..., :used])
        return y, buf[..., n_out * self.stride :]


class StreamingConvTranspose1d(StreamingModule):
    """Causal, weight-normalised ``ConvTranspose1d``; ``F`` input frames give ``F * stride`` samples."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        if kernel_size < stride:
            raise ValueError(f"kernel_size {kernel_size} must be >= stride {stride}")
        self.convtr = weight_norm(nn.ConvTranspose1d(in_ch, out_ch, kernel_size, stride=stride))
        self.stride = stride
        self.overlap = kernel_size - stride

    def forward(self, x: Tensor) -> Tensor:
        y = self.convtr(x)
        return y[..., : y.shape[-1] - self.overlap]

    def init_state(self, batch_size: int, device: torch.device | None = None) -> State:
        return torch.zeros(batch_size, self.convtr.out_channels, self.overlap, device=device)

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape[-1] == 0:
            return x.new_zeros(x.shape[0], self.convtr.out_channels, 0), state
        y = self.convtr(x)
        y = torch.cat([y[..., : self.overlap] + state.to(y.dtype), y[..., self.overlap :]], dim=-1)
        n_out = x.shape[-1] * self.stride
        tail = y[..., n_out:]
        if self.convtr.bias is not None:  # the next chunk adds its own bias to these samples
            tail = tail - self.convtr.bias[None, :, None]
        return y[..., :n_out], tail


class StreamingLSTM(StreamingModule):
    """LSTM over time with a skip connection (as in EnCodec's SEANet); state = the LSTM's ``(h, c)``."""

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: Tensor) -> Tensor:
        y, _ = self.lstm(x.permute(2, 0, 1))
        return y.permute(1, 2, 0) + x

    def init_state(self, batch_size: int, device: torch.device | None = None) -> State:
        shape = (self.lstm.num_layers, batch_size, self.lstm.hidden_size)
        return (torch.zeros(shape, device=device), torch.zeros(shape, device=device))

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        if x.shape[-1] == 0:
            return x, state
        y, new_state = self.lstm(x.permute(2, 0, 1), state)
        return y.permute(1, 2, 0) + x, new_state


class StreamingSequential(nn.Sequential, StreamingModule):
    """``nn.Sequential`` whose ``step`` threads each child's state (a list, one entry per child)."""

    def init_state(self, batch_size: int, device: torch.device | None = None) -> State:
        return [m.init_state(batch_size, device) if isinstance(m, StreamingModule) else None for m in self]

    def step(self, x: Tensor, state: list[State]) -> tuple[Tensor, list[State]]:
        new_state = []
        for m, s in zip(self, state, strict=True):
            if isinstance(m, StreamingModule):
                x, s = m.step(x, s)
            else:
                x = m(x)
            new_state.append(s)
        return x, new_state
