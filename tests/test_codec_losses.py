"""Losses, discriminator and gradient balancer of codec training."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from custom_model.codec.balancer import Balancer  # noqa: E402
from custom_model.codec.losses import (  # noqa: E402
    MultiScaleMelLoss,
    MultiScaleSTFTDiscriminator,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    log_mel_numpy,
    mel_filterbank,
    mel_to_hz,
)


def test_mel_filters_are_triangles_centred_on_the_mel_grid():
    fb = mel_filterbank(16000, 1024, 40)
    assert fb.shape == (40, 513) and (fb >= 0).all()
    freqs = np.linspace(0, 8000, 513)
    centres = mel_to_hz(np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 42))[1:-1]
    peaks = freqs[fb.argmax(axis=1)]
    assert np.all(np.abs(peaks - centres) <= 8000 / 512 + 1e-6)  # within one FFT bin
    assert np.all(np.diff(peaks) >= 0)


def test_log_mel_of_a_tone_peaks_in_the_band_of_its_frequency():
    t = np.arange(16000) / 16000
    spec = log_mel_numpy(np.sin(2 * np.pi * 1000 * t), 16000, n_mels=80)
    fb = mel_filterbank(16000, 1024, 80)
    band_of_1k = fb[:, int(round(1000 / 8000 * 512))].argmax()
    assert abs(int(spec.mean(axis=0).argmax()) - int(band_of_1k)) <= 1


def test_mel_loss_is_zero_for_identical_and_grows_with_distortion():
    loss = MultiScaleMelLoss(16000, (256, 512), (32, 64))
    x = torch.randn(2, 1, 4000) * 0.1
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    small = loss(x + 0.01 * torch.randn_like(x), x).item()
    large = loss(x + 0.1 * torch.randn_like(x), x).item()
    assert 0 < small < large


def test_hinge_losses_and_feature_matching():
    ones, minus = [torch.full((2, 1, 3, 4), 1.5)], [torch.full((2, 1, 3, 4), -1.5)]
    assert hinge_discriminator_loss(ones, minus).item() == 0.0  # confident and right: no loss
    assert hinge_discriminator_loss(minus, ones).item() == pytest.approx(5.0)
    assert hinge_generator_loss(ones).item() == 0.0
    feats = [[torch.randn(2, 3, 4, 5)]]
    assert feature_matching_loss(feats, feats).item() == 0.0


def test_discriminator_gives_logits_and_features_per_scale():
    disc = MultiScaleSTFTDiscriminator(filters=4, n_ffts=(256, 128))
    logits, feats = disc(torch.randn(2, 1, 3200))
    assert len(logits) == len(feats) == 2
    assert all(lg.shape[0] == 2 and lg.shape[1] == 1 for lg in logits)
    assert all(len(f) == 5 for f in feats)


def test_balancer_gives_each_loss_its_weighted_share_of_the_gradient_whatever_its_scale():
    y = torch.randn(4, 1, 100, requires_grad=True)
    u = torch.zeros_like(y)
    u[..., :50] = 1.0
    v = torch.zeros_like(y)
    v[..., 50:] = 1.0
    losses = {"a": 1000.0 * (y * u).sum(), "b": 0.001 * (y * v).sum()}  # gradients 10^6 apart in size
    grad, norms = Balancer({"a": 1.0, "b": 3.0}).gradient(losses, y)
    share_a = grad[..., :50].flatten(1).norm(dim=1).mean().item()
    share_b = grad[..., 50:].flatten(1).norm(dim=1).mean().item()
    assert share_b / share_a == pytest.approx(3.0, rel=1e-4)
    assert share_a + share_b == pytest.approx(1.0, rel=1e-4)  # total_norm = 1 per item
    assert norms["a"] / norms["b"] == pytest.approx(1e6, rel=1e-4)


def test_balancer_rejects_bad_weights():
    with pytest.raises(ValueError, match="non-negative"):
        Balancer({"a": -1.0})
