"""Full-Duplex-Bench's turn-taking definitions, as pure functions of timelines (seconds on the input's clock).

Full-Duplex-Bench (Lin et al., arXiv 2503.04721 v1, 2507.23159 v1.5; github.com/DanielLin94144/Full-Duplex-Bench)
scores a system's output channel, time-aligned with the user's input. Its per-task scripts are mirrored here, one
function each, so that a metric of ours that carries their name is computed their way; ``tests/test_turn_fdb.py``
holds these functions to values worked out by hand from their source on planted timelines.

- v1 ``eval_pause_handling.py``, ``eval_smooth_turn_taking.py``, ``eval_user_interruption.py``: the *take-turn*
  rule (:func:`take_turn`) over the system's output words, and the *response latency* (:func:`response_latency_s`)
  from the end of the user's turn to the first output word, negative values counted as 0, averaged over the
  turns taken.
- v1.5 ``get_timing.py``: user and system speech segments (silero-vad), merged across short gaps (0.6 s user,
  0.5 s system: :func:`merge`); the *stop latency* intervals are the overlaps of the two (:func:`overlaps`) and the
  *response latency* intervals run from a user segment's end to the next system segment's start
  (:func:`response_gaps`).

What we feed them differs in one respect, said wherever it matters: Full-Duplex-Bench gets words from an ASR model
(parakeet-tdt with word timestamps); the harness has no ASR in the loop, so its callers pass the system's audible
segments, and the rule's word clause (a sub-second output with more than 3 words is still a turn) cannot fire.
"""

from __future__ import annotations

from collections.abc import Sequence

TURN_DURATION_S = 1.0
"""Output spanning less than this (first word start to last word end) is not a turn unless it has more words than
:data:`TURN_MAX_WORDS` (``turn_duration_threshold`` in their scripts)."""
TURN_MAX_WORDS = 3
"""``turn_num_words_threshold``: a sub-second output of at most this many words is not a turn."""
USER_MERGE_GAP_S = 0.6
"""v1.5 ``USER_MERGE_GAP``: user speech segments closer than this (inclusive) are one segment."""
SYSTEM_MERGE_GAP_S = 0.5
"""v1.5 ``MODEL_MERGE_GAP``: system speech segments closer than this (inclusive) are one segment."""

Span = tuple[float, float | None]


def take_turn(words: Sequence[Span]) -> int:
    """1 when the output ``words`` ([start, end] seconds each, in time order) take the turn, else 0.

    No words: 0. Otherwise the output lasts from the first word's start to the last word's end (the last word's
    start when its end is unknown, as ``eval_pause_handling.py`` allows); at least 1 s is a turn; shorter is a
    turn only with more than 3 words. (Their TOR; "takeover" in our names.)
    """
    if not words:
        return 0
    last_start, last_end = words[-1]
    duration = (last_start if last_end is None else last_end) - words[0][0]
    if duration < TURN_DURATION_S:
        return 0 if len(words) <= TURN_MAX_WORDS else 1
    return 1


def response_latency_s(words: Sequence[Span], user_end_s: float) -> float | None:
    """Seconds from ``user_end_s`` to the first output word when the output takes the turn, else None; an
    output that starts before the user has finished counts as 0 (their scripts append 0 for a negative latency)."""
    if not take_turn(words):
        return None
    return max(0.0, words[0][0] - user_end_s)


def mean(values: Sequence[float | None]) -> float | None:
    """Their averages: the plain mean of the values present (``sum(x) / len(x)``); None when there are none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def merge(segments: Sequence[tuple[float, float]], gap_s: float) -> list[tuple[float, float]]:
    """Sort ``segments`` and join those separated by at most ``gap_s`` (v1.5 ``_merge``)."""
    if not segments:
        return []
    ordered = sorted(segments)
    out = [ordered[0]]
    for start, end in ordered[1:]:
        prev_start, prev_end = out[-1]
        if start - prev_end <= gap_s:
            out[-1] = (prev_start, max(prev_end, end))
        else:
            out.append((start, end))
    return out


def overlaps(user: Sequence[tuple[float, float]], system: Sequence[tuple[float, float]]) -> list[list[float]]:
    """v1.5 stop-latency intervals: every stretch where a (merged) user segment and a (merged) system segment
    overlap, found by walking both lists in time order; of the intervals that end at the same millisecond only the
    shortest is kept. ``[start, end]`` rounded to 1 ms, sorted by end. The stop latency is ``end - start``."""
    raw: list[tuple[float, float]] = []
    i = j = 0
    while i < len(user) and j < len(system):
        u_start, u_end = user[i]
        s_start, s_end = system[j]
        start, end = max(u_start, s_start), min(u_end, s_end)
        if end > start:
            raw.append((start, end))
        if u_end < s_end:
            i += 1
        else:
            j += 1
    shortest: dict[int, tuple[float, float]] = {}
    for start, end in raw:
        key = int(round(end * 1000))
        if key not in shortest or end - start < shortest[key][1] - shortest[key][0]:
            shortest[key] = (start, end)
    return [[round(s, 3), round(e, 3)] for s, e in sorted(shortest.values(), key=lambda iv: iv[1])]


def response_gaps(
    user: Sequence[tuple[float, float]], system: Sequence[tuple[float, float]]
) -> list[list[float]]:
    """v1.5 response-latency intervals: for each (merged) user segment, from its end to the first (merged) system
    segment that starts strictly after it; when several user segments lead to the same system start, the one
    ending last is kept. ``[user end, system start]`` rounded to 1 ms, sorted by the system start."""
    starts = [s for s, _ in system]
    best: dict[int, list[float]] = {}
    for _, u_end in user:
        nxt = next((s for s in starts if s > u_end), None)
        if nxt is None:
            continue
        key = int(round(nxt * 1000))
        candidate = [round(u_end, 3), round(nxt, 3)]
        if key not in best or candidate[0] > best[key][0]:
            best[key] = candidate
    return [iv for _, iv in sorted(best.items(), key=lambda kv: kv[1][1])]
