"""Built-in metrics and ASR judges, registered through the same hooks third-party plugins use."""

from __future__ import annotations

import numpy as np

from ..hookspecs import hookimpl
from .core import (
    NEEDS_MODEL,
    NEEDS_REF_AUDIO,
    NEEDS_REF_TEXT,
    NEEDS_TRANSCRIPT,
    Metric,
    MetricResult,
    MetricUnavailable,
    Sample,
)

REF_SR = 16000
"""Reference metrics compare both signals at 16 kHz (PESQ-WB's rate)."""


def aligned_pair(sample: Sample) -> tuple[np.ndarray, np.ndarray, dict]:
    """The (reference, output) pair at 16 kHz, delay removed and lengths matched (cached on the sample)."""
    if "aligned16k" not in sample.cache:
        from .reference import align_to_reference

        sample.cache["aligned16k"] = align_to_reference(
            sample.ref_audio, sample.ref_sr, sample.audio, sample.sr, fs=REF_SR
        )
    return sample.cache["aligned16k"]


def _pesq(sample: Sample) -> MetricResult:
    from .reference import pesq_wb

    ref, deg, info = aligned_pair(sample)
    try:
        import pesq as _pesq_pkg  # noqa: F401
    except ModuleNotFoundError:
        raise MetricUnavailable(
            "n/a: pip install 's2s-bench[metrics]' (the 'pesq' package is missing)"
        ) from None
    try:
        value = pesq_wb(ref, deg, REF_SR)
    except RuntimeError as exc:  # pesq.NoUtterancesError, BufferTooShortError, ...
        return MetricResult.na(f"{sample.id}: PESQ failed ({type(exc).__name__}: {exc})")
    return MetricResult(value, detail={k: round(v, 3) for k, v in info.items()})


def _stoi(extended: bool):
    def fn(sample: Sample) -> float:
        from .reference import stoi

        ref, deg, _ = aligned_pair(sample)
        return stoi(ref, deg, REF_SR, extended=extended)

    return fn


def _si_sdr(sample: Sample) -> float:
    from .reference import si_sdr

    ref, deg, _ = aligned_pair(sample)
    return si_sdr(ref, deg)


def _log_mel(sample: Sample) -> float:
    from .reference import log_mel_distance

    ref, deg, _ = aligned_pair(sample)
    return log_mel_distance(ref, deg, REF_SR)


def _dnsmos(key: str):
    def fn(sample: Sample) -> float:
        from .nonintrusive import dnsmos

        if "dnsmos" not in sample.cache:
            sample.cache["dnsmos"] = dnsmos(sample.audio, sample.sr)
        return sample.cache["dnsmos"][key]

    return fn


def _speaker_sim(sample: Sample) -> float:
    from .nonintrusive import speaker_similarity

    return speaker_similarity(sample.audio, sample.sr, sample.ref_audio, sample.ref_sr)


def _wer(sample: Sample) -> MetricResult:
    from .text import word_errors

    c = word_errors(sample.ref_text, sample.transcript)
    return MetricResult(
        c.rate if c.ref_len else None,
        None if c.ref_len else "n/a: empty reference text",
        stats=(c.errors, c.ref_len),
        detail=c.as_dict(),
    )


def _cer(unit: str):
    def fn(sample: Sample) -> MetricResult:
        from .text import char_errors

        try:
            c = char_errors(sample.ref_text, sample.transcript, unit)
        except ModuleNotFoundError as exc:
            raise MetricUnavailable(str(exc)) from None
        return MetricResult(
            c.rate if c.ref_len else None,
            None if c.ref_len else "n/a: empty reference text",
            stats=(c.errors, c.ref_len),
            detail=c.as_dict(),
        )

    return fn


def _chrf(sample: Sample) -> MetricResult:
    from .text import chrf_from_stats, chrf_stats

    stats = chrf_stats(sample.ref_text, sample.transcript)
    return MetricResult(chrf_from_stats(stats), stats=tuple(float(v) for row in stats for v in row))


BUILTIN_METRICS = (
    Metric(
        "pesq",
        _pesq,
        "MOS-LQO",
        True,
        (NEEDS_REF_AUDIO,),
        description="PESQ wide-band (P.862.2) at 16 kHz vs the reference, after alignment",
    ),
    Metric(
        "stoi",
        _stoi(False),
        "index",
        True,
        (NEEDS_REF_AUDIO,),
        description="short-time objective intelligibility",
    ),
    Metric("estoi", _stoi(True), "index", True, (NEEDS_REF_AUDIO,), description="extended STOI"),
    Metric(
        "si_sdr", _si_sdr, "dB", True, (NEEDS_REF_AUDIO,), description="scale-invariant SDR vs the reference"
    ),
    Metric(
        "log_mel_distance",
        _log_mel,
        "dB",
        False,
        (NEEDS_REF_AUDIO,),
        description="mean over frames of the RMS difference of 80-band log-mel spectra",
    ),
    *(
        Metric(
            f"dnsmos_{k}",
            _dnsmos(k),
            "MOS",
            True,
            (NEEDS_MODEL,),
            group="dnsmos",
            description=f"DNSMOS {label} (speechmos ONNX, clips tiled to 9.01 s)",
        )
        for k, label in (
            ("sig", "P.835 signal"),
            ("bak", "P.835 background"),
            ("ovrl", "P.835 overall"),
            ("p808", "P.808 overall"),
        )
    ),
    Metric(
        "speaker_sim",
        _speaker_sim,
        "cosine",
        True,
        (NEEDS_REF_AUDIO, NEEDS_MODEL),
        description="cosine similarity of resemblyzer d-vectors, response vs reference voice",
    ),
    Metric(
        "wer",
        _wer,
        "fraction",
        False,
        (NEEDS_REF_TEXT, NEEDS_TRANSCRIPT),
        aggregation="ratio",
        description="word error rate of the judge's transcript (corpus: total errors / total reference words)",
    ),
    Metric(
        "cer",
        _cer("grapheme"),
        "fraction",
        False,
        (NEEDS_REF_TEXT, NEEDS_TRANSCRIPT),
        aggregation="ratio",
        description="character error rate over grapheme clusters (corpus: total errors / total clusters)",
    ),
    Metric(
        "cer_codepoint",
        _cer("codepoint"),
        "fraction",
        False,
        (NEEDS_REF_TEXT, NEEDS_TRANSCRIPT),
        aggregation="ratio",
        description="character error rate over Unicode code points",
    ),
    Metric(
        "chrf",
        _chrf,
        "chrF",
        True,
        (NEEDS_REF_TEXT, NEEDS_TRANSCRIPT),
        aggregation="chrf",
        description="chrF (beta 2, orders 1-6) over grapheme clusters",
    ),
)

AUDIO_METRICS = ("pesq", "stoi", "estoi", "si_sdr", "log_mel_distance", "dnsmos", "speaker_sim")
TEXT_METRICS = ("wer", "cer", "cer_codepoint", "chrf")


@hookimpl
def register_metrics(register):
    for metric in BUILTIN_METRICS:
        register(metric)


def _whisper_factory(**options):
    from .judges import WhisperJudge

    return WhisperJudge(**options)


@hookimpl
def register_asr_judges(register):
    register("whisper", _whisper_factory)
