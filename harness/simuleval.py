"""SimulEval's latency scores for speech output, computed exactly as its scorer does.

Source: ``simuleval/evaluator/scorers/latency_scorer.py`` and ``SpeechOutputInstance.summarize`` in
``simuleval/evaluator/instance.py`` (facebookresearch/SimulEval), without computation awareness (``delays``, not
``elapsed``). Written from reading that code, so published SimulEval numbers can be compared with ours.

Everything is on the *source clock*, in ms: an output segment's delay is how much source audio had been sent when
it was received (``delays``), its duration is its length (``durations``), and the source length is the whole
input file. SimulEval plays segments back to back, a segment never before its delay:
``start_i = max(end_{i-1}, delay_i)`` with ``end_0 = delay_0``; these are its ``intervals``.

- StartOffset = ``delays[0]``: the first non-empty segment, silent or not.
- EndOffset = end of the last interval - source length.
- RTF = end of the last interval / source length.
- ATD (Average Token Delay, speech to speech): source and output are cut into 300 ms "tokens" per chunk (the rest
  of a chunk is a shorter token); each output token ends at ``max(its chunk's delay, previous token's end) + its
  length``; it is paired with a source token by SimulEval's rule and ATD is the mean of (output token end - paired
  source token end).

Each function takes one instance; SimulEval's corpus score is the mean over instances (our summary's ``mean``).
Instances with no output have no delays: SimulEval skips them, and so do we (``None``).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import mean

SRC_TOKEN_MS = 300
"""SimulEval's length of a source token for speech input (ms)."""
TGT_TOKEN_MS = 300
"""SimulEval's length of an output token for speech output (ms)."""


def intervals(delays: Sequence[float], durations: Sequence[float]) -> list[tuple[float, float]]:
    """SimulEval's ``intervals``: ``(start, duration)`` of each output segment played back to back."""
    out: list[tuple[float, float]] = []
    if not delays:
        return out
    prev_end = delays[0]
    for delay, duration in zip(delays, durations, strict=True):
        start = max(prev_end, delay)
        out.append((start, duration))
        prev_end = start + duration
    return out


def start_offset(delays: Sequence[float]) -> float | None:
    return float(delays[0]) if delays else None


def end_offset(delays: Sequence[float], durations: Sequence[float], source_length: float) -> float | None:
    iv = intervals(delays, durations)
    return float(iv[-1][0] + iv[-1][1] - source_length) if iv else None


def rtf(delays: Sequence[float], durations: Sequence[float], source_length: float) -> float | None:
    iv = intervals(delays, durations)
    return float((iv[-1][0] + iv[-1][1]) / source_length) if iv and source_length > 0 else None


def _tokens(duration: float, token: float) -> list[float]:
    num, rest = divmod(duration, token)
    return int(num) * [token] + ([rest] if rest != 0 else [])


def atd(delays: Sequence[float], durations: Sequence[float]) -> float | None:
    """SimulEval's ATD for speech input and speech output (``ATDScorer.__call__`` + ``compute``)."""
    if not delays:
        return None
    chunk_sizes = {"src": [0], "tgt": [0]}
    token_to_chunk = {"src": [0], "tgt": [0]}
    token_to_time = {"src": [0.0], "tgt": [0.0]}
    unique = sorted(set(delays), key=list(delays).index)

    chunk_durations: list[float] = []
    prev = None
    for delay, duration in zip(delays, durations, strict=True):
        if delay != prev:
            chunk_durations.append(duration)
        else:
            chunk_durations[-1] += duration
        prev = delay
    tgt_lens: list[float] = []
    tgt_delays: list[float] = []
    for i, chunk_duration in enumerate(chunk_durations, 1):
        lens = _tokens(chunk_duration, TGT_TOKEN_MS)
        tgt_lens += lens
        chunk_sizes["tgt"].append(len(lens))
        token_to_chunk["tgt"] += [i] * len(lens)
        tgt_delays += [unique[i - 1]] * len(lens)

    src_durations = [a - b for a, b in zip(unique, [0, *unique[:-1]], strict=True)]
    for i, chunk_duration in enumerate(src_durations, 1):
        lens = _tokens(chunk_duration, SRC_TOKEN_MS)
        chunk_sizes["src"].append(len(lens))
        for length in lens:
            token_to_time["src"].append(token_to_time["src"][-1] + length)
            token_to_chunk["src"].append(i)

    for delay, length in zip(tgt_delays, tgt_lens, strict=True):
        token_to_time["tgt"].append(max(delay, token_to_time["tgt"][-1]) + length)

    atd_delays = []
    for t in range(1, len(token_to_chunk["tgt"])):
        chunk_id = token_to_chunk["tgt"][t]
        acc_x = sum(chunk_sizes["src"][:chunk_id])
        acc_y = sum(chunk_sizes["tgt"][:chunk_id])
        s = t - max(0, acc_y - acc_x)
        current_src_size = sum(chunk_sizes["src"][: chunk_id + 1])
        s = s if s < current_src_size else current_src_size
        atd_delays.append(token_to_time["tgt"][t] - token_to_time["src"][s])
    return float(mean(atd_delays)) if atd_delays else None
