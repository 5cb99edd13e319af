"""The definitions printed at the end of every report.

Latency definitions are taken from ``harness.latency`` (its ``DEFINITIONS`` mapping, name -> text) when the core
provides them, so they are written once; the fallback below repeats DESIGN.md's table for runs read before that.
"""

from __future__ import annotations

_LATENCY_FALLBACK = {
    "input_end": "when the last input sample was delivered (realtime pacing: when the speaker stopped)",
    "TTFB": "first output chunk received - input_end, in ms (any sample, silence included)",
    "TTFA": "first audible output sample - input_end, in ms (first sample above -40 dBFS over 10 ms); the headline "
    "number",
    "start_offset, end_offset": "SimulEval's: output start / output end relative to source length, on the source "
    "clock, in ms",
    "RTF": "backend compute time / duration of audio produced (below 1 = faster than real time)",
    "RTFx": "audio seconds processed / wall seconds for the backend's share of the run (throughput)",
    "stalls": "play the output from its first audible sample at real-time speed: count and total ms of buffer "
    "underruns before the end",
    "stage marks": "each mark's time - input_end, in ms, per stage (e.g. asr_final, llm_first_token, "
    "tts_first_audio)",
}

_REPORT_TERMS = {
    "[lo, hi]": "95% confidence interval: the run's own (bootstrap) interval where the summary has one, else a "
    "seeded percentile bootstrap (2000 resamples) over the per-utterance values",
    "n": "number of utterances with a value for that metric (failed or never-audible utterances have none)",
    "failures": "utterances that crashed, timed out, hung or had bad input (kind and count)",
    "random weights: latency only": "the backend ran random weights: its latency is real, its output quality "
    "is meaningless and is not shown",
    "Pareto front": "backends not beaten on both TTFA p50 and the quality metric by another backend",
    "time clock": "every time is the harness's monotonic clock (time.perf_counter_ns); backends never time "
    "themselves",
}

_QUALITY = {
    "dnsmos": "DNSMOS P.835 (non-intrusive MOS predictor, 1-5, higher is better): SIG speech, BAK background, "
    "OVRL overall",
    "wer": "word error rate of an ASR judge's transcript of the response against the reference text (Telugu-safe "
    "normalisation: NFC, Unicode punctuation removed, marks kept); lower is better",
    "cer": "character error rate over grapheme clusters, same normalisation as WER; lower is better",
    "speaker": "cosine similarity of speaker embeddings (resemblyzer) between input and response; higher is closer",
    "spk": "cosine similarity of speaker embeddings (resemblyzer) between input and response; higher is closer",
    "stoi": "short-time objective intelligibility (0-1, higher is better)",
    "pesq": "PESQ wide-band (1-4.5, higher is better), reference-based",
    "chrf": "character n-gram F-score of the response text against the expected answer; higher is better",
}


def latency_definitions() -> dict[str, str]:
    """Latency metric name -> definition, from ``harness.latency.DEFINITIONS`` when present."""
    try:
        from harness import latency
    except ImportError:
        return dict(_LATENCY_FALLBACK)
    defs = getattr(latency, "DEFINITIONS", None)
    return dict(defs) if isinstance(defs, dict) and defs else dict(_LATENCY_FALLBACK)


def quality_definition(name: str) -> str:
    """A one-line definition of a quality metric by its name (prefix match), or a pointer to its plugin."""
    low = name.lower()
    for prefix, text in _QUALITY.items():
        if low.startswith(prefix):
            return text
    return "defined by the metric plugin that wrote it (see docs/metrics.md)"


def all_definitions(quality_names: list[str]) -> list[tuple[str, str]]:
    """(term, definition) rows for the report: latency, the quality metrics present, then report terms."""
    rows = list(latency_definitions().items())
    rows += [(name, quality_definition(name)) for name in quality_names]
    rows += list(_REPORT_TERMS.items())
    return rows
