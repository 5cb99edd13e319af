"""Reconstruction and adversarial losses for codec training (EnCodec's recipe), plus a numpy log-mel for metrics.

- :func:`mel_filterbank`: triangular mel filters (HTK mel scale, Slaney area normalisation), numpy only.
- :class:`MultiScaleMelLoss`: L1 on linear mel + L2 on log mel over several STFT sizes.
- :class:`MultiScaleSTFTDiscriminator`: one 2-D conv net per STFT resolution on (real, imag), as in EnCodec.
- :func:`hinge_discriminator_loss`, :func:`hinge_generator_loss`, :func:`feature_matching_loss`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> np.ndarray:
    """``[n_mels, n_fft // 2 + 1]`` triangular filters, equally spaced on the mel scale, each of unit area."""
    f_max = sample_rate / 2 if f_max is None else f_max
    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (fft_freqs[None, :] - lower) / (center - lower)
    falling = (upper - fft_freqs[None, :]) / (upper - center)
    fb = np.maximum(0.0, np.minimum(rising, falling))
    fb *= 2.0 / (upper - lower)  # Slaney normalisation: equal area per filter
    return fb.astype(np.float32)


def log_mel_numpy(
    x: np.ndarray, sample_rate: int, n_fft: int = 1024, hop: int = 256, n_mels: int = 80
) -> np.ndarray:
    """Natural-log mel spectrogram ``[frames, n_mels]`` of a mono float signal (Hann window, floor 1e-5)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    n_frames = 1 + (x.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft + 1)[:-1], axis=-1))
    return np.log(np.maximum(spec @ mel_filterbank(sample_rate, n_fft, n_mels).T.astype(np.float64), 1e-5))


class MelSpectrogram(nn.Module):
    """Torch mel spectrogram (magnitude) ``[B, 1, T]`` -> ``[B, n_mels, frames]``."""

    def __init__(self, sample_rate: int, n_fft: int, hop: int, n_mels: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer(
            "fb", torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels)), persistent=False
        )

    def forward(self, wav: Tensor) -> Tensor:
        x = wav.float().flatten(0, 1)
        spec = torch.stft(x, self.n_fft, self.hop, window=self.window, center=True, return_complex=True).abs()
        return (self.fb @ spec).view(wav.shape[0], -1, spec.shape[-1])


class MultiScaleMelLoss(nn.Module):
    """Sum over STFT sizes of ``L1(mel) + L2(log mel)``; hop = n_fft / 4, n_mels per scale."""

    def __init__(
        self, sample_rate: int, n_ffts: tuple[int, ...], n_mels: tuple[int, ...], eps: float = 1e-5
    ) -> None:
        super().__init__()
        if len(n_ffts) != len(n_mels):
            raise ValueError(f"n_ffts {n_ffts} and n_mels {n_mels} must have the same length")
        self.eps = eps
        self.mels = nn.ModuleList(
            MelSpectrogram(sample_rate, n, n // 4, m) for n, m in zip(n_ffts, n_mels, strict=True)
        )

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        loss = fake.new_zeros((), dtype=torch.float32)
        for mel in self.mels:
            mf, mr = mel(fake), mel(real)
            loss = loss + (mf - mr).abs().mean()
            loss = loss + ((mf + self.eps).log() - (mr + self.eps).log()).pow(2).mean()
        return loss / len(self.mels)


class ComplexSTFTLoss(nn.Module):
    """Phase-aware spectral loss over several STFT sizes: squared error of the power-compressed complex spectra
    ``|X|^p e^{i angle X}`` plus of the compressed magnitudes ``|X|^p`` (p = 0.3, as in speech enhancement).

    The mel losses only see magnitudes, so any phase that gives the right magnitudes is as good as the true one;
    this loss rewards the true phase where the codes carry it (harmonics that line up, pulses in place) while the
    magnitude term keeps uncertain regions from being averaged away.
    """

    def __init__(self, n_ffts: tuple[int, ...] = (256, 512, 1024), power: float = 0.3) -> None:
        super().__init__()
        self.n_ffts, self.power = n_ffts, power
        for n in n_ffts:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        loss = fake.new_zeros((), dtype=torch.float32)
        for n in self.n_ffts:
            window = getattr(self, f"window_{n}")
            specs = [
                torch.stft(w.float().flatten(0, 1), n, n // 4, window=window, return_complex=True)
                for w in (fake, real)
            ]
            mags = [(s.abs() + 1e-8) for s in specs]
            comp = [s * m ** (self.power - 1) for s, m in zip(specs, mags, strict=True)]
            loss = (
                loss
                + (comp[0] - comp[1]).abs().pow(2).mean()
                + (mags[0] ** self.power - mags[1] ** self.power).pow(2).mean()
            )
        return loss / len(self.n_ffts)


class STFTDiscriminator(nn.Module):
    """EnCodec's per-resolution discriminator: 2-D convs over (real, imag) of one STFT, dilated in time."""

    def __init__(
        self, filters: int, n_fft: int, max_filters: int = 256, dilations: tuple[int, ...] = (1, 2, 4)
    ) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        ch = [2, filters] + [min(filters * 2 ** (i + 1), max_filters) for i in range(len(dilations))]
        layers = [weight_norm(nn.Conv2d(ch[0], ch[1], (3, 9), padding=(1, 4)))]
        for i, d in enumerate(dilations):
            layers.append(
                weight_norm(
                    nn.Conv2d(ch[i + 1], ch[i + 2], (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4))
                )
            )
        layers.append(weight_norm(nn.Conv2d(ch[-1], ch[-1], (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(layers)
        self.out = weight_norm(nn.Conv2d(ch[-1], 1, (3, 3), padding=(1, 1)))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, wav: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``[B, 1, T]`` -> (logits ``[B, 1, frames, freq']``, feature maps)."""
        spec = torch.stft(
            wav.float().flatten(0, 1), self.n_fft, self.hop, window=self.window, return_complex=True
        )
        x = torch.view_as_real(spec).permute(0, 3, 2, 1)  # [B, 2, frames, freq]
        feats = []
        for conv in self.convs:
            x = self.act(conv(x))
            feats.append(x)
        return self.out(x), feats


class MultiScaleSTFTDiscriminator(nn.Module):
    """One :class:`STFTDiscriminator` per STFT size."""

    def __init__(self, filters: int, n_ffts: tuple[int, ...]) -> None:
        super().__init__()
        self.discs = nn.ModuleList(STFTDiscriminator(filters, n) for n in n_ffts)

    def forward(self, wav: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        logits, feats = [], []
        for d in self.discs:
            lg, ft = d(wav)
            logits.append(lg)
            feats.append(ft)
        return logits, feats


def hinge_discriminator_loss(real_logits: list[Tensor], fake_logits: list[Tensor]) -> Tensor:
    """``mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))``, averaged over discriminators."""
    loss = sum(
        torch.relu(1 - r).mean() + torch.relu(1 + f).mean()
        for r, f in zip(real_logits, fake_logits, strict=True)
    )
    return loss / len(real_logits)


def hinge_generator_loss(fake_logits: list[Tensor]) -> Tensor:
    """``mean(relu(1 - D(G(z))))``, averaged over discriminators."""
    return sum(torch.relu(1 - f).mean() for f in fake_logits) / len(fake_logits)


def feature_matching_loss(real_feats: list[list[Tensor]], fake_feats: list[list[Tensor]]) -> Tensor:
    """L1 between discriminator feature maps, each normalised by the mean magnitude of the real one."""
    terms = [
        (f - r.detach()).abs().mean() / (r.detach().abs().mean() + 1e-8)
        for rs, fs in zip(real_feats, fake_feats, strict=True)
        for r, f in zip(rs, fs, strict=True)
    ]
    return sum(terms) / len(terms)
