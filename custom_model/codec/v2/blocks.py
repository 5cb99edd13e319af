"""Codec v2's building blocks, each offline (``forward``) and streaming (``step``) with the same arithmetic.

Every block works on time-major tensors ``[B, T, C]`` (samples: ``[B, T]``) and keeps its streaming state as one
plain tensor with the batch first, so a model's whole state is a dict of tensors (see ``codec/state.py``).

- :class:`CausalSTFT`: log magnitude + power-compressed spectrum of a window that *ends* at each hop's last sample.
- :class:`CausalConvNeXt`: Vocos' ConvNeXt block with a causal depthwise convolution (state: the last k-1 steps).
- :class:`ISTFTHead`: magnitude and phase per sub-frame -> inverse FFT -> Hann window -> overlap-add. The window
  of sub-frame ``s`` starts at sample ``s * hop``, so an output sample is final as soon as the sub-frame that
  covers it has been decoded (no look-ahead); the state is the overlapping tail of the last windows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def hann(n: int) -> Tensor:
    """Periodic Hann window of ``n`` samples (float64)."""
    return 0.5 - 0.5 * torch.cos(2 * math.pi * torch.arange(n, dtype=torch.float64) / n)


class CausalSTFT(nn.Module):
    """Samples ``[B, T]`` (T a multiple of ``hop``) -> features ``[B, T / hop, 3 * (n_fft // 2 + 1)]``.

    Features per hop: ``log|X|`` and the real and imaginary parts of ``|X|^power e^{i angle X}``, for the
    Hann-windowed ``n_fft`` samples ending at the hop's last sample (the first windows see zeros before the start).
    """

    def __init__(self, n_fft: int, hop: int, power: float) -> None:
        super().__init__()
        self.n_fft, self.hop, self.power = n_fft, hop, power
        self.context = n_fft - hop
        bins = n_fft // 2 + 1
        n = torch.arange(n_fft, dtype=torch.float64)[:, None]
        k = torch.arange(bins, dtype=torch.float64)[None, :]
        angle = 2 * math.pi * n * k / n_fft
        window = hann(n_fft)[:, None]
        basis = torch.cat([window * torch.cos(angle), -window * torch.sin(angle)], dim=1)  # [n_fft, 2 * bins]
        self.register_buffer("basis", basis.float(), persistent=False)
        self.features = 3 * bins

    def _features(self, buf: Tensor) -> Tensor:
        with torch.autocast(buf.device.type, enabled=False):  # logs and powers stay in float32 under autocast
            frames = buf.float().unfold(
                1, self.n_fft, self.hop
            )  # [B, S, n_fft], a strided view (dim 1, not -1:
            # ONNX export of unfold mishandles a negative dimension)
            # one stream: a 2-D product reads the strided view without copying it (not while tracing: a graph
            # exported at batch 1 must stay right for every batch)
            if frames.shape[0] == 1 and not torch.jit.is_tracing():
                spec = (frames[0] @ self.basis)[None]
            else:
                spec = frames @ self.basis
            re, im = spec.chunk(2, dim=-1)
            power = re * re + im * im + 1e-10
            scale = power ** ((self.power - 1.0) / 2.0)
            return torch.cat([0.5 * torch.log(power), re * scale, im * scale], dim=-1)

    def forward(self, wav: Tensor) -> Tensor:
        return self._features(F.pad(wav, (self.context, 0)))

    def init_state(self, batch_size: int, device=None, dtype=None) -> Tensor:
        return torch.zeros(batch_size, self.context, device=device, dtype=dtype)

    def step(self, wav: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        buf = torch.cat([state, wav], dim=-1)
        return self._features(buf), buf[:, buf.shape[-1] - self.context :]


class CausalConvNeXt(nn.Module):
    """``x + gamma * W2 gelu(W1 LN(dwconv(x)))`` with a causal depthwise convolution of ``kernel`` steps.

    Offline the depthwise convolution is ``conv1d`` (fast on long inputs); streaming it is a multiply-and-sum over
    the ``kernel`` newest steps, because ``conv1d`` on a few steps costs ~60 us of overhead, more than the block's
    two matrix products. Both compute the same sums (up to float rounding).
    """

    def __init__(self, dim: int, kernel: int, mult: int, layer_scale: float) -> None:
        super().__init__()
        self.dim, self.kernel, self.context = dim, kernel, kernel - 1
        self.dwconv = nn.Conv1d(dim, dim, kernel, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Linear(dim, mult * dim)
        self.pw2 = nn.Linear(mult * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

        self._frozen: tuple[Tensor, ...] | None = None  # see freeze_()

    def _mlp(self, x: Tensor, h: Tensor) -> Tensor:
        h = F.layer_norm(h, (self.dim,), self.norm.weight, self.norm.bias, self.norm.eps)
        h = F.linear(F.gelu(F.linear(h, self.pw1.weight, self.pw1.bias), approximate="tanh"), self.pw2.weight)
        return torch.addcmul(x, h + self.pw2.bias, self.gamma)

    @torch.no_grad()
    def freeze_(self) -> None:
        """For inference with frozen weights: fold ``gamma`` into the second projection and lay the depthwise
        kernel out as ``[kernel, dim]``, so a streaming step runs fewer, simpler operations (same arithmetic)."""
        self._frozen = (
            self.dwconv.weight[:, 0, :].t().contiguous(),
            self.dwconv.bias.clone(),
            self.pw2.weight * self.gamma[:, None],
            self.pw2.bias * self.gamma,
        )

    def forward(self, x: Tensor) -> Tensor:
        buf = F.pad(x, (0, 0, self.context, 0)).transpose(1, 2)
        h = F.conv1d(buf, self.dwconv.weight, self.dwconv.bias, groups=self.dim).transpose(1, 2)
        return self._mlp(x, h)

    def init_state(self, batch_size: int, device=None, dtype=None) -> Tensor:
        return torch.zeros(batch_size, self.context, self.dim, device=device, dtype=dtype)

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        buf = torch.cat([state, x], dim=1)
        tail = buf[:, buf.shape[1] - self.context :]
        if self._frozen is None:
            weight = self.dwconv.weight[:, 0, :]  # [dim, kernel]
            h = (buf.unfold(1, self.kernel, 1) * weight).sum(-1) + self.dwconv.bias
            return self._mlp(x, h), tail
        dw_weight, dw_bias, w2, b2 = self._frozen
        if x.shape[1] == 1:  # one step: the whole buffer is the kernel's window
            h = (buf * dw_weight).sum(1, keepdim=True) + dw_bias
        else:  # one product per tap (no unfold: ONNX export cannot unfold a length it does not know)
            steps = x.shape[1]
            h = dw_bias + buf[:, :steps] * dw_weight[0]
            for k in range(1, self.kernel):
                h = h + buf[:, k : k + steps] * dw_weight[k]
        h = F.layer_norm(h, (self.dim,), self.norm.weight, self.norm.bias, self.norm.eps)
        h = F.gelu(F.linear(h, self.pw1.weight, self.pw1.bias), approximate="tanh")
        return x + F.linear(h, w2, b2), tail


class ISTFTHead(nn.Module):
    """Features ``[B, S, dim]`` (one row per sub-frame) -> samples ``[B, S * hop]`` by inverse STFT.

    A linear layer gives the log magnitude and the phase of ``n_fft // 2 + 1`` bins (Vocos' parameterisation:
    ``exp(log_mag) * (cos phase + i sin phase)``); each frame is inverse-transformed, Hann-windowed and overlap-added
    at ``hop``, normalised so that overlapping windows sum to one.
    """

    def __init__(self, dim: int, n_fft: int, hop: int, max_log_magnitude: float) -> None:
        super().__init__()
        self.n_fft, self.hop, self.max_log_magnitude = n_fft, hop, max_log_magnitude
        self.context = n_fft - hop
        bins = n_fft // 2 + 1
        self.proj = nn.Linear(dim, 2 * bins)
        k = torch.arange(bins, dtype=torch.float64)[:, None]
        n = torch.arange(n_fft, dtype=torch.float64)[None, :]
        angle = 2 * math.pi * k * n / n_fft
        weight = torch.full((bins, 1), 2.0, dtype=torch.float64)
        weight[0] = 1.0
        if n_fft % 2 == 0:
            weight[-1] = 1.0
        window = hann(n_fft)[None, :]
        ola_gain = n_fft / (2 * hop)  # sum of periodic Hann windows overlapping at hop
        basis = torch.cat([weight * torch.cos(angle), -weight * torch.sin(angle)], dim=0)  # [2 * bins, n_fft]
        self.register_buffer("basis", (basis * window / (n_fft * ola_gain)).float(), persistent=False)

    def frames(self, x: Tensor) -> Tensor:
        """Windowed time-domain frames ``[B, S, n_fft]`` (float32, also under autocast)."""
        with torch.autocast(x.device.type, enabled=False):
            log_mag, phase = F.linear(x.float(), self.proj.weight, self.proj.bias).chunk(2, dim=-1)
            mag = torch.exp(torch.clamp(log_mag, max=self.max_log_magnitude))
            return torch.cat([mag * torch.cos(phase), mag * torch.sin(phase)], dim=-1) @ self.basis

    def overlap_add(self, frames: Tensor, tail: Tensor) -> tuple[Tensor, Tensor]:
        """Overlap-add ``frames`` onto the previous ``tail``; returns (the ``S * hop`` final samples, new tail)."""
        b, s, n = frames.shape
        if (
            n == 2 * self.hop
        ):  # half-overlapping windows: each hop is one frame's first half + the last's second
            first, second = frames[..., : self.hop], frames[..., self.hop :]
            previous = torch.cat([tail[:, None], second[:, :-1]], dim=1)
            return (first + previous).reshape(b, s * self.hop), second[:, -1]
        length = (s - 1) * self.hop + n
        out = F.fold(frames.transpose(1, 2), (1, length), kernel_size=(1, n), stride=(1, self.hop))
        out = out.view(b, length)
        out = torch.cat([out[:, : self.context] + tail, out[:, self.context :]], dim=1)
        return out[:, : s * self.hop], out[:, s * self.hop :]

    def forward(self, x: Tensor) -> Tensor:
        tail = x.new_zeros(x.shape[0], self.context)
        return self.overlap_add(self.frames(x), tail)[0]

    def init_state(self, batch_size: int, device=None, dtype=None) -> Tensor:
        return torch.zeros(batch_size, self.context, device=device, dtype=dtype)

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        return self.overlap_add(self.frames(x), state)
