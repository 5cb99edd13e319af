"""Latency metrics, computed from the event log alone (``s2s-bench rescore`` re-runs exactly this).

All times are on the harness's monotonic clock (``time.perf_counter_ns``), per utterance:

- ``input_end``: when the last input sample was delivered to the backend (realtime pacing: when the speaker stopped).
- ``ttfb_ms``: first output chunk received - ``input_end`` (any sample, silence included). Negative when a system
  starts answering before the user has finished.
- ``ttfa_ms``: when the first audible output sample is heard - ``input_end``; the headline number. Output is played
  as it arrives, from the first chunk, at real-time speed (a player without a buffer): a sample is heard at its
  chunk's playout time plus its offset in the chunk, and a chunk plays when it has arrived and the one before has
  finished. So leading silence costs its real duration. A sample is audible when the RMS over the 10 ms starting at
  it reaches -40 dBFS (``harness.audio.first_audible_sample``).
- ``start_offset_ms``, ``end_offset_ms``: SimulEval's, on the source clock (realtime pacing only): when the first
  audible sample is heard, relative to the start of the source; when the last output sample has been played,
  relative to the end of the source.
- ``rtf``: generation time / duration of audio produced, with generation time = last output chunk - the earlier of
  ``input_end`` and the first output chunk. Below 1 = faster than real time.
- ``rtfx``: audio seconds processed / wall seconds during which the backend had a session open (open_asr_leaderboard's
  throughput; meaningful in ``fast`` pacing).
- ``stall_count``, ``stall_ms``: the output played from its first audible sample at real-time speed: the number and
  total length of buffer underruns before its end (an underrun shorter than ``min_stall_ms`` is polling jitter, not
  a stall).
- ``marks``: each stage mark's receive time - ``input_end`` (e.g. the cascade's ``asr_final``).

Percentiles p50/p90/p95/p99 and the mean are reported with 95% bootstrap confidence intervals (``harness.stats``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field

from .stats import describe

DEFAULT_MIN_STALL_MS = 1.0
LATENCY_METRICS = ("ttfa_ms", "ttfb_ms", "rtf", "start_offset_ms", "end_offset_ms", "stall_count", "stall_ms")


@dataclass
class UtteranceLatency:
    backend: str
    utt: str
    status: str
    error_kind: str | None = None
    error: str | None = None
    ttfb_ms: float | None = None
    ttfa_ms: float | None = None
    start_offset_ms: float | None = None
    end_offset_ms: float | None = None
    rtf: float | None = None
    stall_count: int | None = None
    stall_ms: float | None = None
    audio_in_s: float = 0.0
    audio_out_s: float = 0.0
    wall_start_ns: int | None = None
    wall_end_ns: int | None = None
    marks: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def final_attempts(events: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Events of the last *finished* attempt of each (backend, utterance), in log order."""
    by_attempt: dict[tuple[str, str, int], list[dict]] = defaultdict(list)
    for ev in events:
        if "u" in ev:
            by_attempt[(ev["b"], ev["u"], ev.get("a", 1))].append(ev)
    best: dict[tuple[str, str], tuple[int, list[dict]]] = {}
    for (b, u, a), evs in by_attempt.items():
        if any(e["e"] == "utt_end" for e in evs) and ((b, u) not in best or a > best[(b, u)][0]):
            best[(b, u)] = (a, evs)
    return {key: evs for key, (a, evs) in best.items()}


def run_settings(events: list[dict]) -> dict:
    """Settings from the log's ``run`` lines (the last one wins after a resume)."""
    settings: dict = {}
    for ev in events:
        if ev.get("e") == "run":
            settings = ev.get("settings", {})
    return settings


def utterance_latency(
    backend: str, utt: str, evs: list[dict], realtime: bool, min_stall_ms: float = DEFAULT_MIN_STALL_MS
) -> UtteranceLatency:
    """Every latency metric of one utterance from its events (see the module docstring for definitions)."""
    start = next((e for e in evs if e["e"] == "utt_start"), None)
    end = next(e for e in evs if e["e"] == "utt_end")
    error = next((e for e in evs if e["e"] == "error"), None)
    res = UtteranceLatency(backend, utt, end["status"])
    if error is not None:
        res.error_kind, res.error = error.get("kind"), error.get("reason")
    if start is None:
        return res
    res.wall_start_ns, res.wall_end_ns = start["t"], end["t"]
    res.audio_in_s = start["in_samples"] / start["in_sr"]
    if res.status != "ok":
        return res
    out_sr = start["out_sr"]
    input_end = next(e["t"] for e in evs if e["e"] == "input_end")
    chunks = [(e["t"], e["n"]) for e in evs if e["e"] == "out" and e["n"] > 0]
    res.marks = {e["name"]: (e["t"] - input_end) / 1e6 for e in evs if e["e"] == "mark"}
    res.audio_out_s = sum(n for _, n in chunks) / out_sr
    if not chunks:
        return res
    res.ttfb_ms = (chunks[0][0] - input_end) / 1e6
    res.rtf = ((chunks[-1][0] - min(input_end, chunks[0][0])) / 1e9) / res.audio_out_s

    # Playout without a buffer: each chunk starts when it has arrived and its predecessor has finished.
    ns_per_sample = 1e9 / out_sr
    playout, first_sample = [], []
    clock, index = None, 0
    for t, n in chunks:
        clock = t if clock is None else max(t, clock)
        playout.append(clock)
        first_sample.append(index)
        clock += n * ns_per_sample
        index += n
    onset = next((e["s"] for e in evs if e["e"] == "audible"), None)
    if onset is None or onset >= index:
        return res  # never audible: no TTFA, no stalls
    j = max(i for i, s in enumerate(first_sample) if s <= onset)
    heard = playout[j] + (onset - first_sample[j]) * ns_per_sample
    res.ttfa_ms = (heard - input_end) / 1e6

    # Stalls: play from the onset at real-time speed; a chunk arriving after the player needed it is an underrun.
    stalls, stall_ns = 0, 0.0
    clock = heard + (first_sample[j] + chunks[j][1] - onset) * ns_per_sample
    for t, n in chunks[j + 1 :]:
        late = t - clock
        if late > min_stall_ms * 1e6:
            stalls += 1
            stall_ns += late
            clock = t
        clock += n * ns_per_sample
    res.stall_count, res.stall_ms = stalls, stall_ns / 1e6
    if realtime:
        res.start_offset_ms = (heard - start["t"]) / 1e6
        res.end_offset_ms = (clock - input_end) / 1e6
    return res


def utterance_latencies(events: list[dict]) -> list[UtteranceLatency]:
    settings = run_settings(events)
    realtime = settings.get("pacing", "realtime") == "realtime"
    min_stall = settings.get("min_stall_ms", DEFAULT_MIN_STALL_MS)
    return [
        utterance_latency(b, u, evs, realtime, min_stall) for (b, u), evs in final_attempts(events).items()
    ]


def busy_seconds(intervals: list[tuple[int, int]]) -> float:
    """Length of the union of [start, end] intervals (ns), in seconds."""
    total, cur_start, cur_end = 0, None, None
    for s, e in sorted(intervals):
        if cur_end is None or s > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = s, e
        else:
            cur_end = max(cur_end, e)
    if cur_end is not None:
        total += cur_end - cur_start
    return total / 1e9


def summarize(events: list[dict]) -> dict[str, dict]:
    """Per-backend summaries (the ``summary`` of run.json) from the event log alone."""
    per_backend: dict[str, list[UtteranceLatency]] = defaultdict(list)
    for res in utterance_latencies(events):
        per_backend[res.backend].append(res)
    summary = {}
    for backend, rows in per_backend.items():
        rows.sort(key=lambda r: r.utt)
        ok = [r for r in rows if r.status == "ok"]
        intervals = [(r.wall_start_ns, r.wall_end_ns) for r in rows if r.wall_start_ns is not None]
        busy = busy_seconds(intervals)
        audio_in = sum(r.audio_in_s for r in rows if r.wall_start_ns is not None)
        s = {
            "n": len(rows),
            "n_ok": len(ok),
            "n_failed": len(rows) - len(ok),
            "n_silent": sum(1 for r in ok if r.ttfa_ms is None),
            "failures": [
                {"utt": r.utt, "kind": r.error_kind, "reason": r.error} for r in rows if r.status != "ok"
            ],
            "audio_in_s": audio_in,
            "audio_out_s": sum(r.audio_out_s for r in ok),
            "rtfx": audio_in / busy if busy > 0 else None,
        }
        for metric in LATENCY_METRICS:
            s[metric] = describe([getattr(r, metric) for r in ok])
        names = sorted({name for r in ok for name in r.marks})
        s["marks"] = {name: describe([r.marks.get(name) for r in ok]) for name in names}
        summary[backend] = s
    return summary
