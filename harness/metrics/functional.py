"""Pure per-sample metric functions (the functional API, as in ``torchmetrics.functional``).

Audio functions take NumPy float arrays and sample rates; text functions take strings. They raise
``ValueError`` for bad arguments (in torchmetrics' wording) and ``ModuleNotFoundError`` naming the extra to
install; the registered :class:`harness.metrics.Metric` objects turn those into ``n/a`` results instead.
"""

from __future__ import annotations

from .nonintrusive import dnsmos, speaker_similarity
from .reference import align_to_reference, estimate_lag, log_mel_distance, pesq_wb, si_sdr, stoi
from .text import cer, char_errors, chrf, edit_counts, graphemes, normalize_telugu, wer, word_errors


def estoi(ref, deg, fs: int) -> float:
    """Extended STOI (Jensen & Taal 2016); see :func:`stoi`."""
    return stoi(ref, deg, fs, extended=True)


__all__ = [
    "align_to_reference",
    "cer",
    "char_errors",
    "chrf",
    "dnsmos",
    "edit_counts",
    "estimate_lag",
    "estoi",
    "graphemes",
    "log_mel_distance",
    "normalize_telugu",
    "pesq_wb",
    "si_sdr",
    "speaker_similarity",
    "stoi",
    "wer",
    "word_errors",
]
