"""Reconstruction quality of a decoded signal against its reference (both mono float, same rate, same length).

PESQ and STOI call the ``pesq`` and ``pystoi`` packages directly through :func:`pesq_wb` and :func:`stoi`, two small
functions meant to be swapped for ``harness.metrics`` once that lands (same inputs, same outputs).
"""

from __future__ import annotations

import math

import numpy as np

from .losses import log_mel_numpy


def _need(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"{package} is needed for this metric: pip install 's2s-bench[metrics]'"
        ) from exc


def _check(ref: np.ndarray, deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref, deg = np.asarray(ref, dtype=np.float64).ravel(), np.asarray(deg, dtype=np.float64).ravel()
    if ref.shape != deg.shape:
        raise ValueError(f"reference ({ref.size} samples) and decoded ({deg.size} samples) differ in length")
    return ref, deg


def pesq_wb(ref: np.ndarray, deg: np.ndarray, sample_rate: int = 16000) -> float:
    """Wide-band PESQ (ITU-T P.862.2, MOS-LQO 1.0 ... 4.64); NaN when PESQ cannot score the pair (e.g. no speech)."""
    if sample_rate != 16000:
        raise ValueError(f"PESQ-WB needs 16000 Hz audio, got {sample_rate} Hz")
    pesq = _need("pesq", "pesq")
    ref, deg = _check(ref, deg)
    try:
        return float(pesq.pesq(sample_rate, ref, deg, "wb"))
    except Exception:  # pesq raises NoUtterancesError / BufferTooShortError on unusable input
        return math.nan


def stoi(ref: np.ndarray, deg: np.ndarray, sample_rate: int = 16000) -> float:
    """Short-time objective intelligibility (0 ... 1)."""
    pystoi = _need("pystoi", "pystoi")
    ref, deg = _check(ref, deg)
    return float(pystoi.stoi(ref, deg, sample_rate, extended=False))


def si_sdr(ref: np.ndarray, deg: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (higher is better)."""
    ref, deg = _check(ref, deg)
    ref, deg = ref - ref.mean(), deg - deg.mean()
    alpha = np.dot(deg, ref) / (np.dot(ref, ref) + 1e-12)
    target = alpha * ref
    noise = deg - target
    return float(10 * np.log10((np.dot(target, target) + 1e-12) / (np.dot(noise, noise) + 1e-12)))


def log_mel_distance(ref: np.ndarray, deg: np.ndarray, sample_rate: int = 16000) -> float:
    """Mean absolute difference of natural-log 80-band mel spectrograms (n_fft 1024, hop 256); lower is better."""
    ref, deg = _check(ref, deg)
    return float(np.mean(np.abs(log_mel_numpy(ref, sample_rate) - log_mel_numpy(deg, sample_rate))))


def all_metrics(ref: np.ndarray, deg: np.ndarray, sample_rate: int = 16000) -> dict[str, float]:
    return {
        "pesq_wb": pesq_wb(ref, deg, sample_rate),
        "stoi": stoi(ref, deg, sample_rate),
        "si_sdr_db": si_sdr(ref, deg),
        "log_mel_dist": log_mel_distance(ref, deg, sample_rate),
    }
