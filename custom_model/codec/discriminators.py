"""Multi-period (HiFi-GAN) and multi-resolution (UnivNet, Vocos) discriminators, sized for CPU training.

Both return ``(logits, feature_maps)`` lists, one entry per sub-discriminator, like
:class:`~custom_model.codec.losses.MultiScaleSTFTDiscriminator`, so the same hinge and feature-matching losses apply.

- :class:`PeriodDiscriminator`: the waveform folded into ``[T / p, p]`` and 2-D convolutions along time only, so
  each sees one phase of a period ``p`` (periodic structure: pitch, where a codec's buzz shows).
- :class:`ResolutionDiscriminator`: 2-D convolutions over one log-magnitude spectrogram (time x frequency).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, channels: tuple[int, ...], kernel: int = 5, stride: int = 3) -> None:
        super().__init__()
        self.period = period
        chans = (1, *channels)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(a, b, (kernel, 1), (stride, 1), padding=(kernel // 2, 0)))
            for a, b in zip(chans[:-1], chans[1:], strict=True)
        )
        self.convs.append(weight_norm(nn.Conv2d(chans[-1], chans[-1], (kernel, 1), padding=(kernel // 2, 0))))
        self.out = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, wav: Tensor) -> tuple[Tensor, list[Tensor]]:
        x = wav.float()
        pad = (-x.shape[-1]) % self.period
        if pad:
            x = F.pad(x, (0, pad), mode="reflect")
        x = x.view(x.shape[0], 1, -1, self.period)
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            feats.append(x)
        return self.out(x), feats


class MultiPeriodDiscriminator(nn.Module):
    def __init__(
        self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), channels: tuple[int, ...] = (8, 16, 32, 64)
    ):
        super().__init__()
        self.discs = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)

    def forward(self, wav: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        outs = [d(wav) for d in self.discs]
        return [o[0] for o in outs], [o[1] for o in outs]


class ResolutionDiscriminator(nn.Module):
    def __init__(self, n_fft: int, channels: int = 16, layers: int = 3) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        convs = [weight_norm(nn.Conv2d(1, channels, (3, 9), padding=(1, 4)))]
        convs += [
            weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4)))
            for _ in range(layers)
        ]
        convs.append(weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(convs)
        self.out = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: Tensor) -> tuple[Tensor, list[Tensor]]:
        spec = torch.stft(
            wav.float().flatten(0, 1), self.n_fft, self.hop, window=self.window, return_complex=True
        ).abs()
        x = torch.log(spec.clamp(min=1e-5)).transpose(1, 2)[:, None]  # [B, 1, frames, bins]
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            feats.append(x)
        return self.out(x), feats


class MultiResolutionDiscriminator(nn.Module):
    def __init__(self, n_ffts: tuple[int, ...] = (256, 512, 1024), channels: int = 16) -> None:
        super().__init__()
        self.discs = nn.ModuleList(ResolutionDiscriminator(n, channels) for n in n_ffts)

    def forward(self, wav: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        outs = [d(wav) for d in self.discs]
        return [o[0] for o in outs], [o[1] for o in outs]


class CombinedDiscriminator(nn.Module):
    """Several discriminators as one: their logits and feature maps concatenated."""

    def __init__(self, *discriminators: nn.Module) -> None:
        super().__init__()
        self.parts = nn.ModuleList(discriminators)

    def forward(self, wav: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        logits, feats = [], []
        for part in self.parts:
            lg, ft = part(wav)
            logits += lg
            feats += ft
        return logits, feats
