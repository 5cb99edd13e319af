"""Latency metrics, computed from the event log alone (``s2s-bench rescore`` re-runs exactly this).

Every definition is written here once; docs/ and the report quote these bullets. All times are on the harness's
monotonic clock (``time.perf_counter_ns``), per utterance; "start" is the utterance's start (the session is
open and the speaker starts talking), and in ``realtime`` pacing the input's schedule is the speaker's clock:
chunk *i* is due at start + the time of its last sample in the file.

- ``speech_end``: the end of the user's speech, the origin of the headline numbers: the end of the input's last
  voiced segment in the file (harness.vad: silero-vad with the settings Full-Duplex-Bench uses, or an energy
  fallback; method and parameters in run.json ``vad``), placed on the schedule: realtime: start + its time in
  the file, never the time a push happened to return; fast: when the chunk holding it was handed to the backend.
  Data that knows where its speech ends (an utterance's ``extra.speech_end_s``: an annotated corpus, audio made
  by code) gives it instead of the VAD; an input where no speech is found (or a log without it) uses
  ``file_end``. Full-Duplex-Bench's response latency is measured from the same point.
- ``file_end``: the end of the input file on the same schedule (realtime: start + file duration; fast: when the
  last chunk was handed over). The ``_eof`` figures are measured from it, as all figures were before round 2.
- ``trailing_silence_ms``: file duration - time of ``speech_end`` in the file: what TTFA from the end of file
  hides.
- ``input_lag_ms``: realtime only: how far the pushes fell behind the speaker: the largest (hand-over time - due
  time) over the chunks. A backend whose ``push()`` blocks makes it grow; above ``input_lag_flag_ms`` (a run
  setting, default 20 ms) the utterance is flagged ``input_lagged``. The headline numbers stay on the schedule.
- ``status``: ``ok`` (finished, audible answer), ``no_answer`` (finished, never audible: no output or only
  silence), ``truncated`` (audible answer started, then cut by the timeout or a hang: its TTFA, TTFB and marks are
  kept), ``failed`` (crash, hang, timeout with no audible answer, bad input, backend not loaded).
- ``answer_rate``: turns with an audible answer (ok or truncated) / all turns, with a 95% Wilson interval. Shown
  wherever a TTFA is shown: TTFA percentiles cover answered turns only.
- ``ttfb_ms``: first output chunk received - ``speech_end`` (any sample, silence included); ``ttfb_eof_ms``: the
  same from ``file_end``.
- ``ttfa_ms``: the headline: when the first audible output sample is heard - ``speech_end``. The output is played
  as it arrives by a player that starts with the first chunk at real-time speed and, when the next chunk is not
  there yet (an underrun), waits for it: the playhead moves to its arrival. So leading silence costs its real
  length. A sample is audible by harness.audio.first_audible_sample: in the first 10 ms window (sliding by one
  sample) whose RMS reaches -40 dBFS, the first sample whose magnitude reaches -40 dBFS. Negative when the answer
  starts before the user has finished (kept as measured; Full-Duplex-Bench averages such turns as 0).
  ``ttfa_eof_ms``: the same from ``file_end``.
- ``ttfa_km``: TTFA over all turns as a Kaplan-Meier estimate: unanswered turns (no_answer, failed) are censored
  at their wait limit (``wait_limit_ms``, from ``speech_end`` to the runner's deadline: the timeout after the end
  of the file in realtime pacing, after the start in fast pacing), so
  a system cannot improve its median by not answering. Median and p95 with 95% bootstrap intervals; a quantile
  is "not reached" when too few turns were answered.
- ``stall_count``, ``stall_ms``: ok turns: the same player from the first audible sample to the end: the number
  and total length of underruns longer than ``min_stall_ms`` (default 1 ms). An underrun moves the playhead, so
  jitter below the threshold never accumulates into a stall.
- ``audio_start_from_source_start_ms``: realtime only: when the first audible sample is heard - start (the
  user-perceived start offset).
- ``audio_end_from_speech_end_ms``: realtime only, ok turns: when the player has played the last output sample -
  ``speech_end`` (the user-perceived end offset); ``audio_end_from_file_end_ms``: the same from ``file_end``.
- ``simuleval_start_offset_ms``, ``simuleval_end_offset_ms``, ``simuleval_atd_ms``, ``simuleval_rtf``: SimulEval's
  StartOffset, EndOffset, ATD and RTF for speech output, exactly as its latency scorer computes them (module
  harness.simuleval): on the source clock, a chunk's delay is the input audio sent when it arrived; silent output
  counts. For ok and no_answer turns with output.
- ``rtf``: ok turns: generation time / output duration, generation time = last output chunk - the later of the
  first output chunk and ``speech_end`` (0 when all output came before it): waiting for the user is not
  generation. Below 1 = faster than real time.
- ``rtfx``: per backend: input audio seconds of ok turns / wall seconds during which the backend had a session
  open (from start until the runner saw the session done, or the error that ended it; overlapping sessions
  counted once), harness work after the backend finished excluded (open_asr_leaderboard's throughput; meant for
  ``fast`` pacing). Failed turns add time, not audio.
- ``marks``: each stage mark's receive time - ``speech_end`` (e.g. the cascade's ``asr_final``), for every turn
  that was not failed; a mark that comes more than once (a conversation: ``endpointing=system``) counts its first.
- ``endpointing``: a run setting: ``oracle`` (the default: ``end_input()`` at the end of the file, the definitions
  above) or ``system`` (never: the microphone keeps streaming and the system decides, harness.turns). Then TTFA
  from ``speech_end`` includes the system's endpointing; ``file_end`` is still the end of the input file; the
  SimulEval delays stop growing at the end of the file (as SimulEval's do once the source is read); stalls, RTF and
  the end offsets cover the first answer: the output received before the first injected user speech or
  ``barge_in``. The turn-taking metrics (takeover rates, response latency, time to yield, false stops) are
  defined in harness.turns.metrics.

Summaries give n, mean, p50, p90, p95, p99 (each with a 95% seeded bootstrap interval), min and max
(``harness.stats.describe``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field

from . import simuleval
from .stats import describe, km_describe, wilson_ci

DEFAULT_MIN_STALL_MS = 1.0
DEFAULT_INPUT_LAG_FLAG_MS = 20.0
DEFAULT_TIMEOUT_S = 60.0
STATUSES = ("ok", "no_answer", "truncated", "failed")
ANSWERED = ("ok", "truncated")
SPEECH_END_SOURCES = ("vad", "annotation")
"""Where a speech end can come from; otherwise (``no_speech``, ``file_end``) the end of the file is used."""
LATENCY_METRICS = (
    "ttfa_ms",
    "ttfa_eof_ms",
    "ttfb_ms",
    "ttfb_eof_ms",
    "rtf",
    "stall_count",
    "stall_ms",
    "input_lag_ms",
    "trailing_silence_ms",
    "audio_start_from_source_start_ms",
    "audio_end_from_speech_end_ms",
    "audio_end_from_file_end_ms",
    "simuleval_start_offset_ms",
    "simuleval_end_offset_ms",
    "simuleval_atd_ms",
    "simuleval_rtf",
)
"""Per-utterance numbers (ms unless the name says otherwise) that summaries, the report and the gate know."""


@dataclass(frozen=True)
class LatencySettings:
    """The run settings the definitions depend on (from the log's ``run`` line)."""

    realtime: bool = True
    min_stall_ms: float = DEFAULT_MIN_STALL_MS
    timeout_s: float = DEFAULT_TIMEOUT_S
    input_lag_flag_ms: float = DEFAULT_INPUT_LAG_FLAG_MS

    @classmethod
    def from_run(cls, settings: dict) -> LatencySettings:
        return cls(
            realtime=settings.get("pacing", "realtime") == "realtime",
            min_stall_ms=float(settings.get("min_stall_ms", DEFAULT_MIN_STALL_MS)),
            timeout_s=float(settings.get("timeout_s", DEFAULT_TIMEOUT_S)),
            input_lag_flag_ms=float(settings.get("input_lag_flag_ms", DEFAULT_INPUT_LAG_FLAG_MS)),
        )


@dataclass
class UtteranceLatency:
    backend: str
    utt: str
    status: str
    error_kind: str | None = None
    error: str | None = None
    speech_end_s: float | None = None
    speech_end_from: str = "file_end"  # vad | annotation | no_speech | file_end (the log has no speech end)
    trailing_silence_ms: float | None = None
    input_lag_ms: float | None = None
    input_lagged: bool | None = None
    wait_limit_ms: float | None = None
    ttfb_ms: float | None = None
    ttfb_eof_ms: float | None = None
    ttfa_ms: float | None = None
    ttfa_eof_ms: float | None = None
    audio_start_from_source_start_ms: float | None = None
    audio_end_from_speech_end_ms: float | None = None
    audio_end_from_file_end_ms: float | None = None
    simuleval_start_offset_ms: float | None = None
    simuleval_end_offset_ms: float | None = None
    simuleval_atd_ms: float | None = None
    simuleval_rtf: float | None = None
    rtf: float | None = None
    stall_count: int | None = None
    stall_ms: float | None = None
    audio_in_s: float = 0.0
    audio_out_s: float = 0.0
    busy_start_ns: int | None = None
    busy_end_ns: int | None = None
    marks: dict[str, float] = field(default_factory=dict)

    @property
    def answered(self) -> bool:
        return self.status in ANSWERED

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


def _playout(chunks: list[tuple[int, int]], ns_per_sample: float) -> tuple[list[float], list[int], float]:
    """The player: each chunk starts when it has arrived and the one before has been played. Returns each chunk's
    start (ns), its first sample's index in the output, and when the last sample has been played."""
    starts, first, clock, index = [], [], None, 0
    for t, n in chunks:
        clock = t if clock is None else max(float(t), clock)
        starts.append(clock)
        first.append(index)
        clock += n * ns_per_sample
        index += n
    return starts, first, float(clock if clock is not None else 0.0)


def utterance_latency(
    backend: str,
    utt: str,
    evs: list[dict],
    settings: LatencySettings | None = None,
    speech_end_s: float | None = None,
    speech_end_from: str | None = None,
) -> UtteranceLatency:
    """Every latency metric of one utterance from its events (definitions: the module docstring).

    With ``speech_end_from`` (``"vad"``, ``"annotation"``, or ``"no_speech"`` when the VAD found none),
    ``speech_end_s`` (time in the input file, s) overrides the log's ``utt_start.speech_end_s``: an old log rescored
    with speech ends re-derived from its inputs.
    """
    cfg = settings or LatencySettings()
    start = next((e for e in evs if e["e"] == "utt_start"), None)
    end = next(e for e in evs if e["e"] == "utt_end")
    error = next((e for e in evs if e["e"] == "error"), None)
    res = UtteranceLatency(backend, utt, end["status"])
    if error is not None:
        res.error_kind, res.error = error.get("kind"), error.get("reason")
    if start is None:
        res.wait_limit_ms = cfg.timeout_s * 1000
        return res
    t0, in_sr, out_sr = start["t"], start["in_sr"], start["out_sr"]
    duration_s = start["in_samples"] / in_sr
    res.audio_in_s = duration_s

    # The speaker's schedule: speech_end, file_end and how far the pushes fell behind it.
    pushes = [(e["t"], e["n"]) for e in evs if e["e"] == "push"]
    handed_end = [e["t"] for e in evs if e["e"] == "input_end"]
    if speech_end_from is None:
        speech_end_s = start.get("speech_end_s")
        speech_end_from = start.get("speech_end_from", "vad") if speech_end_s is not None else "file_end"
    res.speech_end_from = speech_end_from
    if speech_end_s is None or speech_end_from not in SPEECH_END_SOURCES:
        speech_end_s = duration_s
    speech_end_s = min(float(speech_end_s), duration_s)
    res.speech_end_s = speech_end_s
    res.trailing_silence_ms = (duration_s - speech_end_s) * 1000
    if cfg.realtime:
        file_end = t0 + duration_s * 1e9
        speech_end = t0 + speech_end_s * 1e9
        sent, lags = 0, []
        for t, n in pushes:
            sent += n
            lags.append(t - (t0 + sent / in_sr * 1e9))
        if lags:
            res.input_lag_ms = max(lags) / 1e6
            res.input_lagged = res.input_lag_ms > cfg.input_lag_flag_ms
        deadline = t0 + (duration_s + cfg.timeout_s) * 1e9
    else:
        file_end = float(handed_end[0] if handed_end else pushes[-1][0] if pushes else t0)
        speech_end = file_end
        last_voiced = max(0, int(round(speech_end_s * in_sr)) - 1)
        sent = 0
        for i, (t, n) in enumerate(pushes):
            sent += n
            if sent > last_voiced:
                speech_end = float(t) if i < len(pushes) - 1 else file_end
                break
        deadline = t0 + cfg.timeout_s * 1e9
    res.wait_limit_ms = (deadline - speech_end) / 1e6

    stop = next((e["t"] for e in evs if e["e"] == "done"), None)
    if stop is None and error is not None:
        stop = error["t"]
    if stop is None:  # a log from before the runner recorded ``done``: the backend's last event
        stop = max([e["t"] for e in evs if e["e"] in ("out", "mark", "push", "input_end")] or [end["t"]])
    res.busy_start_ns, res.busy_end_ns = t0, int(stop)
    if res.status == "failed":
        return res

    res.marks = {}
    for e in evs:
        if e["e"] == "mark":
            res.marks.setdefault(e["name"], (e["t"] - speech_end) / 1e6)
    chunks = [(e["t"], e["n"]) for e in evs if e["e"] == "out" and e["n"] > 0]
    res.audio_out_s = sum(n for _, n in chunks) / out_sr
    onset = next((e["s"] for e in evs if e["e"] == "audible"), None)
    if onset is not None and onset >= sum(n for _, n in chunks):
        onset = None
    if res.status == "ok" and onset is None:
        res.status = "no_answer"  # logs from before round 2 called a turn that never made a sound ok
    if not chunks:
        return res
    res.ttfb_ms = (chunks[0][0] - speech_end) / 1e6
    res.ttfb_eof_ms = (chunks[0][0] - file_end) / 1e6
    if res.status in ("ok", "no_answer"):
        _simuleval(res, pushes, chunks, in_sr, out_sr, start["in_samples"])

    ns_per_sample = 1e9 / out_sr
    starts, first, played_end = _playout(chunks, ns_per_sample)
    if onset is None:
        return res  # never audible: no TTFA, no stalls
    j = max(i for i, s in enumerate(first) if s <= onset)
    heard = starts[j] + (onset - first[j]) * ns_per_sample
    res.ttfa_ms = (heard - speech_end) / 1e6
    res.ttfa_eof_ms = (heard - file_end) / 1e6
    if cfg.realtime:
        res.audio_start_from_source_start_ms = (heard - t0) / 1e6
    if res.status != "ok":
        return res
    interjected = [e["t"] for e in evs if e["e"] == "inject" and "t" in e]
    interjected += [e["t"] for e in evs if e["e"] == "mark" and e["name"] == "barge_in"]
    if interjected:  # a conversation: the first answer is what was received before the user spoke again
        first_answer = [c for c in chunks if c[0] < min(interjected)]
        if len(first_answer) > j:
            chunks = first_answer
            starts, first = starts[: len(chunks)], first[: len(chunks)]
            played_end = starts[-1] + chunks[-1][1] * ns_per_sample
    answer_s = sum(n for _, n in chunks) / out_sr
    res.rtf = max(0.0, chunks[-1][0] - max(chunks[0][0], speech_end)) / 1e9 / answer_s
    stalls, stall_ns = 0, 0.0
    for k in range(j + 1, len(chunks)):
        gap = starts[k] - (starts[k - 1] + chunks[k - 1][1] * ns_per_sample)
        if gap > cfg.min_stall_ms * 1e6:
            stalls += 1
            stall_ns += gap
    res.stall_count, res.stall_ms = stalls, stall_ns / 1e6
    if cfg.realtime:
        res.audio_end_from_speech_end_ms = (played_end - speech_end) / 1e6
        res.audio_end_from_file_end_ms = (played_end - file_end) / 1e6
    return res


def _simuleval(res, pushes, chunks, in_sr: int, out_sr: int, in_samples: int) -> None:
    """SimulEval's delays (source ms sent when each chunk arrived) and durations, then its four scores."""
    delays, sent, k = [], 0, 0
    for t, _ in chunks:
        while k < len(pushes) and pushes[k][0] <= t:
            sent += pushes[k][1]
            k += 1
        delays.append(min(sent, in_samples) * 1000 / in_sr)
    durations = [1000 * n / out_sr for _, n in chunks]
    source_ms = in_samples * 1000 / in_sr
    res.simuleval_start_offset_ms = simuleval.start_offset(delays)
    res.simuleval_end_offset_ms = simuleval.end_offset(delays, durations, source_ms)
    res.simuleval_atd_ms = simuleval.atd(delays, durations)
    res.simuleval_rtf = simuleval.rtf(delays, durations, source_ms)


def utterance_latencies(
    events: list[dict], speech_ends: dict[str, tuple[float | None, str]] | None = None
) -> list[UtteranceLatency]:
    """Latency of the last finished attempt of every (backend, utterance).

    ``speech_ends`` (utterance id -> (end of speech in its file in s or None, where it comes from: ``vad``,
    ``annotation`` or ``no_speech``)) overrides the log's for the utterances it names.
    """
    cfg = LatencySettings.from_run(run_settings(events))
    speech_ends = speech_ends or {}
    out = []
    for (b, u), evs in final_attempts(events).items():
        if u in speech_ends:
            end_s, source = speech_ends[u]
            out.append(utterance_latency(b, u, evs, cfg, end_s, source))
        else:
            out.append(utterance_latency(b, u, evs, cfg))
    return out


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


def censored_ttfa(rows: list[UtteranceLatency]) -> dict:
    """Kaplan-Meier TTFA (``ttfa_km``) of a backend's turns (see :func:`km_ttfa`)."""
    return km_ttfa((r.ttfa_ms, r.answered, r.wait_limit_ms) for r in rows)


def km_ttfa(turns) -> dict:
    """Kaplan-Meier TTFA from ``(ttfa_ms, answered, wait_limit_ms)`` per turn: answered turns are events at their
    TTFA, the others are censored at their wait limit (a turn with neither is left out)."""
    times, observed = [], []
    for ttfa, answered, wait in turns:
        if answered and ttfa is not None:
            times.append(ttfa)
            observed.append(True)
        elif wait is not None:
            times.append(wait)
            observed.append(False)
    return km_describe(times, observed)


def summarize_backend(rows: list[UtteranceLatency]) -> dict:
    """One backend's summary from its utterances' latencies (see docs/run-format.md for the fields)."""
    rows = sorted(rows, key=lambda r: r.utt)
    counts = {status: sum(r.status == status for r in rows) for status in STATUSES}
    n_answered = counts["ok"] + counts["truncated"]
    started = [r for r in rows if r.busy_start_ns is not None]
    busy = busy_seconds([(r.busy_start_ns, r.busy_end_ns) for r in started])
    audio_ok = sum(r.audio_in_s for r in rows if r.status == "ok")
    s: dict = {
        "n": len(rows),
        "n_ok": counts["ok"],
        "n_no_answer": counts["no_answer"],
        "n_truncated": counts["truncated"],
        "n_failed": counts["failed"],
        "n_answered": n_answered,
        "answer_rate": n_answered / len(rows) if rows else None,
        "answer_rate_ci95": wilson_ci(n_answered, len(rows)),
        "failures": [
            {"utt": r.utt, "kind": r.error_kind, "reason": r.error} for r in rows if r.status == "failed"
        ],
        "truncated": [
            {"utt": r.utt, "kind": r.error_kind, "reason": r.error} for r in rows if r.status == "truncated"
        ],
        "no_answer": [r.utt for r in rows if r.status == "no_answer"],
        "input_lagged": [
            {"utt": r.utt, "input_lag_ms": r.input_lag_ms} for r in rows if r.input_lagged is True
        ],
        "speech_end_from": {
            src: sum(r.speech_end_from == src for r in started)
            for src in (*SPEECH_END_SOURCES, "no_speech", "file_end")
        },
        "audio_in_s": sum(r.audio_in_s for r in started),
        "audio_in_ok_s": audio_ok,
        "audio_out_s": sum(r.audio_out_s for r in rows if r.status == "ok"),
        "busy_s": busy,
        "rtfx": audio_ok / busy if busy > 0 else None,
    }
    for metric in LATENCY_METRICS:
        s[metric] = describe([getattr(r, metric) for r in rows])
    s["ttfa_km"] = censored_ttfa(rows)
    names = sorted({name for r in rows for name in r.marks})
    s["marks"] = {name: describe([r.marks.get(name) for r in rows]) for name in names}
    return s


def summarize(
    events: list[dict], speech_ends: dict[str, tuple[float | None, str]] | None = None
) -> dict[str, dict]:
    """Per-backend summaries (the ``summary`` of run.json) from the event log alone; turn-taking runs add
    ``turns`` (harness.turns.metrics)."""
    from .turns.metrics import summarize_turns

    per_backend: dict[str, list[UtteranceLatency]] = defaultdict(list)
    for res in utterance_latencies(events, speech_ends):
        per_backend[res.backend].append(res)
    out = {backend: summarize_backend(rows) for backend, rows in per_backend.items()}
    ends = {r.utt: r.speech_end_s for rows in per_backend.values() for r in rows}
    for backend, turns in summarize_turns(events, ends).items():
        out.setdefault(backend, {})["turns"] = turns
    return out
