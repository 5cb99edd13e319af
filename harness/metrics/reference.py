"""Reference (intrusive) audio metrics as pure functions: PESQ-WB, STOI/ESTOI, SI-SDR, log-mel distance.

Every function takes ``(ref, deg, fs)`` with equal-length float arrays at one sample rate (the reference first,
as in ``pesq`` and ``pystoi``). :func:`align_to_reference` turns an arbitrary (degraded, reference) pair into that
form: it resamples both to the metric's rate with soxr and removes a constant delay, so a system's output can be
scored against the audio it should reproduce.
"""

from __future__ import annotations

import numpy as np

from ..audio import resample

METRICS_EXTRA = "pip install 's2s-bench[metrics]'"
MAX_LAG_S = 2.0
"""Largest delay (either way) :func:`align_to_reference` searches for, in seconds."""


def _check_fs(fs: int, allowed: tuple[int, ...]) -> None:
    if fs not in allowed:
        want = " or ".join(str(a) for a in allowed)
        raise ValueError(f"Expected argument `fs` to be {want} but got {fs}")


def _check_pair(ref: np.ndarray, deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(ref, dtype=np.float64)
    deg = np.asarray(deg, dtype=np.float64)
    if ref.ndim != 1 or deg.ndim != 1:
        raise ValueError(f"Expected 1-D (mono) signals but got shapes {ref.shape} and {deg.shape}")
    if ref.shape != deg.shape:
        raise ValueError(
            f"Expected `ref` and `deg` to have the same length but got {ref.size} and {deg.size} samples "
            "(use align_to_reference first)"
        )
    return ref, deg


def estimate_lag(ref: np.ndarray, deg: np.ndarray, fs: int, max_lag_s: float = MAX_LAG_S) -> int:
    """Delay of ``deg`` relative to ``ref`` in samples (positive: ``deg`` starts later), by cross-correlation.

    The lag maximising the FFT cross-correlation within +-``max_lag_s`` wins. Returns 0 when either signal is
    all zeros.
    """
    ref = np.asarray(ref, dtype=np.float64)
    deg = np.asarray(deg, dtype=np.float64)
    if not np.any(ref) or not np.any(deg):
        return 0
    n = ref.size + deg.size - 1
    nfft = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(deg, nfft) * np.conj(np.fft.rfft(ref, nfft)), nfft)
    max_lag = int(max_lag_s * fs)
    pos = xc[: min(max_lag, deg.size - 1) + 1]  # lags 0..+max
    neg = xc[nfft - min(max_lag, ref.size - 1) :] if ref.size > 1 else xc[:0]  # lags -max..-1
    best_pos = int(np.argmax(pos))
    if neg.size and neg.max() > pos[best_pos]:
        return int(np.argmax(neg)) - neg.size
    return best_pos


def align_to_reference(
    ref: np.ndarray,
    ref_fs: int,
    deg: np.ndarray,
    deg_fs: int,
    fs: int = 16000,
    align: bool = True,
    max_lag_s: float = MAX_LAG_S,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Resample both signals to ``fs`` and make ``deg`` sample-aligned with ``ref`` and the same length.

    1. Sample-rate mismatch: each signal is resampled to ``fs`` with soxr (HQ).
    2. Delay: with ``align=True`` the lag from :func:`estimate_lag` is removed (a late ``deg`` loses its first
       ``lag`` samples).
    3. Missing head or tail: where ``deg`` lacks the start or the end of the reference, the part of the reference
       that is inaudible by the harness's rule (below -40 dBFS, :func:`harness.audio.first_audible_sample`) is cut
       from the reference: a system that trims leading or trailing silence (as loopback does) is not penalised.
       Audible reference audio that ``deg`` lacks is matched with zeros, so it counts against ``deg``.
    4. Extra audio: ``deg`` beyond the reference's end is cut.

    Returns ``(ref, deg, info)``; ``info`` (milliseconds) has ``lag_ms``, ``ref_head_cut_ms``,
    ``ref_tail_cut_ms`` (inaudible reference cut), ``pad_ms`` (zeros standing for missing audible audio) and
    ``cut_ms`` (extra ``deg`` dropped).
    """
    from ..audio import first_audible_sample

    r = resample(np.asarray(ref, dtype=np.float32), ref_fs, fs).astype(np.float64)
    d = resample(np.asarray(deg, dtype=np.float32), deg_fs, fs).astype(np.float64)
    lag = estimate_lag(r, d, fs, max_lag_s) if align else 0
    head_cut = tail_cut = pad = 0
    if lag >= 0:
        d = d[lag:]
    else:  # deg starts -lag samples into the reference
        onset = first_audible_sample(r, fs)
        head_cut = min(-lag, r.size if onset is None else onset)
        r = r[head_cut:]
        pad += -lag - head_cut
        d = np.concatenate([np.zeros(-lag - head_cut), d])
    if d.size < r.size:
        onset_rev = first_audible_sample(r[::-1], fs)
        quiet_tail = r.size if onset_rev is None else onset_rev
        tail_cut = min(r.size - d.size, quiet_tail)
        r = r[: r.size - tail_cut]
    cut = max(0, d.size - r.size)
    pad += max(0, r.size - d.size)
    d = np.concatenate([d, np.zeros(r.size - d.size)]) if d.size < r.size else d[: r.size]
    info = {
        "lag_ms": 1000.0 * lag / fs,
        "ref_head_cut_ms": 1000.0 * head_cut / fs,
        "ref_tail_cut_ms": 1000.0 * tail_cut / fs,
        "pad_ms": 1000.0 * pad / fs,
        "cut_ms": 1000.0 * cut / fs,
    }
    return r, d, info


def pesq_wb(ref: np.ndarray, deg: np.ndarray, fs: int = 16000) -> float:
    """Wide-band PESQ (ITU-T P.862.2, MOS-LQO 1.04-4.64, higher is better) from the ``pesq`` package.

    ``fs`` must be 16000: wide-band PESQ is defined at 16 kHz (resample first, see :func:`align_to_reference`).
    """
    _check_fs(fs, (16000,))
    ref, deg = _check_pair(ref, deg)
    try:
        from pesq import pesq
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"PESQ needs the 'pesq' package: {METRICS_EXTRA}") from None
    return float(pesq(fs, ref, deg, "wb"))


def stoi(ref: np.ndarray, deg: np.ndarray, fs: int, extended: bool = False) -> float:
    """STOI (or ESTOI with ``extended=True``) from ``pystoi``; ~0-1, higher is better. Any ``fs`` (pystoi
    resamples to 10 kHz internally)."""
    ref, deg = _check_pair(ref, deg)
    try:
        from pystoi import stoi as _stoi
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"STOI needs the 'pystoi' package: {METRICS_EXTRA}") from None
    return float(_stoi(ref, deg, fs, extended=extended))


def si_sdr(ref: np.ndarray, deg: np.ndarray, zero_mean: bool = True) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019); higher is better.

    ``10 log10(|a r|^2 / |a r - d|^2)`` with ``a = <d, r> / |r|^2`` (signals made zero-mean first).
    """
    ref, deg = _check_pair(ref, deg)
    if zero_mean:
        ref = ref - ref.mean()
        deg = deg - deg.mean()
    energy = float(np.dot(ref, ref))
    if energy == 0.0:
        raise ValueError("Expected a non-silent reference for SI-SDR but `ref` is all zeros")
    target = (np.dot(deg, ref) / energy) * ref
    noise = deg - target
    eps = np.finfo(np.float64).eps  # as torchmetrics: identical signals give a large finite value
    return float(10.0 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))


_MEL_CACHE: dict[tuple[int, int, int], np.ndarray] = {}


def _mel_basis(fs: int, n_fft: int, n_mels: int) -> np.ndarray:
    key = (fs, n_fft, n_mels)
    if key not in _MEL_CACHE:
        try:
            import librosa
        except ModuleNotFoundError:
            raise ModuleNotFoundError(f"Log-mel distance needs 'librosa': {METRICS_EXTRA}") from None
        _MEL_CACHE[key] = librosa.filters.mel(sr=fs, n_fft=n_fft, n_mels=n_mels)
    return _MEL_CACHE[key]


def log_mel_db(
    x: np.ndarray, fs: int, n_fft: int = 1024, hop: int | None = None, n_mels: int = 80
) -> np.ndarray:
    """Log-mel power spectrogram in dB, shape (frames, n_mels); Hann window, hop 10 ms by default.

    Mel power is floored at 1e-5 (-50 dB; full-scale speech frames reach about +20 to +40 dB here), the usual
    clamp of neural-vocoder mel losses: differences between two near-silent frames do not dominate the distance.
    """
    x = np.asarray(x, dtype=np.float64)
    hop = hop or fs // 100
    if x.size < n_fft:
        x = np.concatenate([x, np.zeros(n_fft - x.size)])
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    spec = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2
    mel = spec @ _mel_basis(fs, n_fft, n_mels).T
    return 10.0 * np.log10(np.maximum(mel, 1e-5))


def log_mel_distance(ref: np.ndarray, deg: np.ndarray, fs: int, n_mels: int = 80) -> float:
    """Log-mel spectral distance in dB (lower is better): per frame, the RMS over ``n_mels`` mel bands of the
    difference of the two log-mel spectra (:func:`log_mel_db`); then the mean over frames."""
    ref, deg = _check_pair(ref, deg)
    a, b = log_mel_db(ref, fs, n_mels=n_mels), log_mel_db(deg, fs, n_mels=n_mels)
    return float(np.mean(np.sqrt(np.mean((a - b) ** 2, axis=1))))
