"""Turn-taking metrics, computed from the event log alone (``s2s-bench rescore`` re-runs exactly this).

Every definition is written here once; docs/turn-taking.md and the report quote these bullets. Times are seconds on
the speaker's clock (``realtime`` pacing: utterance start + time in the input); "heard spans" are the system's
audible stretches (``out_activity``, harness.turns.timeline) placed where the user hears them: the player of
harness.latency, stopped by ``barge_in`` marks. ``speech_end`` is harness.latency's. Full-Duplex-Bench (FDB)
counterparts are named; where a name is theirs the formula is theirs (harness.turns.fdb), fed with heard spans
where they use ASR words. Failed turns are left out of every turn-taking figure and counted apart.

- ``endpointing``: ``oracle`` (the harness called ``end_input()`` at the end of the file) or ``system`` (it never
  did: the system, or the endpointer adapter in front of it, decided; run.json ``endpointer``).
- ``takeover``: FDB's take-turn rule over every heard span of the turn: no output 0; output spanning at least 1 s
  (first start to last end) 1; shorter 1 only with more than 3 spans (FDB: words). ``takeover_rate``: the mean,
  95% Wilson interval. FDB v1 smooth turn-taking TOR (higher is better).
- ``response_latency_ms``: for turns taken, first heard span start - ``speech_end``, 0 when negative (the system
  started before the user had finished). The summary's ``mean`` is FDB v1 smooth turn-taking "Average latency".
- ``endpoint_ms``: the endpointer adapter's first ``endpoint`` mark (received) - ``speech_end``: what deciding that
  the user has finished costs (no FDB counterpart).
- ``early_endpoint``: the endpointer adapter ended the user's turn before ``speech_end`` (``endpoint_ms`` < 0):
  the backend got only part of the question, whether or not it was heard answering before the end.
- ``pause_takeover``: pause scenario: the take-turn rule over the heard spans clipped to [start, ``speech_end``]:
  the system took the turn before the user had really finished. FDB v1 pause handling TOR (lower is better).
- ``spoke_in_pause``: pause scenario: any heard span overlaps the spliced pause (ours; any sound counts).
- ``speaking_at_interrupt``: interrupt scenario (B = the interrupting question's speech, the ``inject`` event's
  ``speech_s``): a heard span, joined across gaps up to 0.5 s (FDB v1.5's system merge gap), holds B's start.
- ``time_to_yield_ms``: interrupt scenario: the end of that joined span - B's start: how long the system talked
  over the user.
- ``yielded``: interrupt scenario: that span ended before B did.
- ``stopped_by_interruption``: interrupt scenario: yielded, while the same question's ``smooth`` turn in the run
  (its twin), at the same time after its first heard span, was still speaking ``STOP_WINDOW_S`` (0.5 s) after
  this turn stopped: the user's speech stopped it. False: it talked on past B's end, the twin too (+0.5 s). Not
  counted when the twin is missing or had stopped by then as well: a short answer ends by itself, whatever the
  user does, and ``yielded`` alone cannot tell.
- ``stop_latency_ms``: interrupt scenario: FDB v1.5's stop latency: the length of the overlap of the user's and the
  system's merged segments (0.6 s and 0.5 s gaps; user segments [0, ``speech_end``] and B) that meets B; it equals
  ``min(time_to_yield, B's length)``.
- ``interrupt_takeover``: interrupt scenario: the take-turn rule over the heard spans clipped to after B's end.
  FDB v1 user interruption TOR.
- ``interrupt_latency_ms``: interrupt scenario: for turns taken after B, their first heard start - B's end, 0 when
  negative. FDB v1 user interruption latency.
- ``answers_interruption``: interrupt scenario: yielded and took the turn after B (ours; FDB also asks GPT-4o
  whether the answer is about B: there is no content judge here).
- ``speaking_at_backchannel``: backchannel scenario (C = the acknowledgement's speech): a heard span joined across
  0.5 s holds C's start.
- ``stopped_at_backchannel``: backchannel scenario: that span ends before C's end + ``STOP_WINDOW_S`` (0.5 s).
- ``resumed_after_backchannel``: backchannel scenario, turns that stopped: heard again within
  ``RESUME_WINDOW_S`` (2 s) after the stop.
- ``false_stop``: backchannel scenario: stopped, while the smooth twin (as above) was still speaking 0.5 s after
  this turn stopped (False: it went on through the window, the twin too, +0.5 s); not counted when the twin is
  missing or had stopped by then as well (the stop could be the answer's natural end). ``false_stop_rate``: false
  stops / turns counted. FDB v1.5 user backchannel asks a language model whether
  the system resumes; there is no timing counterpart.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field

from ..stats import describe, wilson_ci
from . import fdb
from .timeline import clip, heard_spans, play, span_at

STOP_WINDOW_S = 0.5
"""A backchannel stops the system when its audio ends before the acknowledgement's end + this."""
RESUME_WINDOW_S = 2.0
"""A system that stopped at a backchannel resumed when it is heard again within this long after it stopped."""
TURN_METRICS = (
    "response_latency_ms",
    "endpoint_ms",
    "time_to_yield_ms",
    "stop_latency_ms",
    "interrupt_latency_ms",
)
"""Per-turn times (ms) whose summaries the report and the gate know."""


@dataclass
class TurnResult:
    """One turn's turn-taking figures (module docstring); ``None``: does not apply, ``na`` says why."""

    backend: str
    utt: str
    scenario: str
    source: str
    status: str
    takeover: int | None = None
    response_latency_ms: float | None = None
    endpoint_ms: float | None = None
    early_endpoint: bool | None = None
    pause_takeover: int | None = None
    spoke_in_pause: bool | None = None
    speaking_at_interrupt: bool | None = None
    time_to_yield_ms: float | None = None
    yielded: bool | None = None
    stop_latency_ms: float | None = None
    interrupt_takeover: int | None = None
    interrupt_latency_ms: float | None = None
    answers_interruption: bool | None = None
    stopped_by_interruption: bool | None = None
    speaking_at_backchannel: bool | None = None
    stopped_at_backchannel: bool | None = None
    resumed_after_backchannel: bool | None = None
    false_stop: bool | None = None
    na: dict[str, str] = field(default_factory=dict)
    heard_s: list[tuple[float, float]] = field(default_factory=list, repr=False)
    inject_s: tuple[float, float] | None = None
    stop_s: float | None = None
    """Where the system's (joined) audio that held the injection's start ended."""

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("heard_s")
        return out


def heard(evs: list[dict]) -> list[tuple[float, float]] | None:
    """The turn's heard spans (seconds after its start), or None when the log has no ``out_activity``."""
    start = next((e for e in evs if e["e"] == "utt_start"), None)
    activity = next((e for e in evs if e["e"] == "out_activity"), None)
    if start is None or activity is None:
        return None
    items = []
    for e in evs:
        if e["e"] == "out" and e["n"] > 0:
            items.append(("out", e["t"], e["n"]))
        elif e["e"] == "mark" and e.get("name") == "barge_in":
            items.append(("flush", e["t"], 0))
    pieces = play(items, start["out_sr"])
    return heard_spans([tuple(s) for s in activity["segments"]], pieces, start["t"], start["out_sr"])


def turn_result(
    backend: str, utt: str, evs: list[dict], endpointing: str, speech_end_s: float | None
) -> TurnResult | None:
    """The turn-taking figures of one turn from its events; None when it is not a turn-taking turn."""
    start = next((e for e in evs if e["e"] == "utt_start"), None)
    end = next(e for e in evs if e["e"] == "utt_end")
    plan = (start or {}).get("turns")
    if plan is None and endpointing != "system":
        return None
    plan = plan or {"scenario": "smooth", "source": utt}
    res = TurnResult(backend, utt, plan.get("scenario", "smooth"), plan.get("source", utt), end["status"])
    spans = heard(evs)
    if res.status == "failed" or start is None or spans is None:
        return res
    res.heard_s = spans
    t0 = start["t"]
    speech_end = speech_end_s if speech_end_s is not None else start["in_samples"] / start["in_sr"]
    words = [(s, e) for s, e in spans]
    res.takeover = fdb.take_turn(words)
    latency = fdb.response_latency_s(words, speech_end)
    res.response_latency_ms = None if latency is None else latency * 1000
    endpoint = next((e["t"] for e in evs if e["e"] == "mark" and e.get("name") == "endpoint"), None)
    if endpoint is not None:
        res.endpoint_ms = ((endpoint - t0) / 1e9 - speech_end) * 1000
        res.early_endpoint = res.endpoint_ms < 0
    if res.scenario == "pause" and plan.get("pause_s"):
        pause = plan["pause_s"]
        res.pause_takeover = fdb.take_turn(clip(spans, 0.0, speech_end))
        res.spoke_in_pause = bool(clip(spans, pause[0], pause[1]))
    injected = [e for e in evs if e["e"] == "inject"]
    if res.scenario in ("interrupt", "backchannel"):
        done = [e for e in injected if "speech_s" in e]
        if not done:
            skipped = next((e.get("skipped") for e in injected if "skipped" in e), None)
            res.na[res.scenario] = skipped or f"nothing injected (endpointing={endpointing})"
            return res
        res.inject_s = tuple(done[0]["speech_s"])
        joined = fdb.merge(spans, fdb.SYSTEM_MERGE_GAP_S)
        if res.scenario == "interrupt":
            _interrupt(res, spans, joined, speech_end)
        else:
            around = span_at(joined, res.inject_s[0])
            res.speaking_at_backchannel = around is not None
            if around is not None:
                res.stop_s = around[1]
                res.stopped_at_backchannel = around[1] < res.inject_s[1] + STOP_WINDOW_S
                if res.stopped_at_backchannel:
                    back = [s0 for s0, _ in spans if around[1] < s0 <= around[1] + RESUME_WINDOW_S]
                    res.resumed_after_backchannel = bool(back)
    return res


def _interrupt(res: TurnResult, spans, joined, speech_end: float) -> None:
    b_start, b_end = res.inject_s
    around = span_at(joined, b_start)
    res.speaking_at_interrupt = around is not None
    if around is not None:
        res.stop_s = around[1]
        res.time_to_yield_ms = (around[1] - b_start) * 1000
        res.yielded = around[1] < b_end
        user = fdb.merge([(0.0, speech_end), (b_start, b_end)], fdb.USER_MERGE_GAP_S)
        meets = [iv for iv in fdb.overlaps(user, joined) if iv[1] > b_start and iv[0] < b_end]
        if meets:
            res.stop_latency_ms = (meets[0][1] - meets[0][0]) * 1000
    after = clip(spans, b_end, float("inf"))
    res.interrupt_takeover = fdb.take_turn(after)
    latency = fdb.response_latency_s(after, b_end)
    res.interrupt_latency_ms = None if latency is None else latency * 1000
    res.answers_interruption = bool(res.yielded) and res.interrupt_takeover == 1


def pair_with_smooth(results: list[TurnResult]) -> None:
    """Compare each interrupt and backchannel turn with its smooth twin (same backend, same question): was the
    twin, at the same time after its first heard span, still speaking ``STOP_WINDOW_S`` after the moment this
    turn stopped (or its window ended)? Sets ``stopped_by_interruption`` and ``false_stop`` (module docstring)."""
    smooth = {(r.backend, r.source): r for r in results if r.scenario == "smooth" and r.status != "failed"}
    for r in results:
        if r.scenario == "interrupt" and r.yielded is not None:
            name, flag, window_end = "stopped_by_interruption", r.yielded, r.inject_s[1]
        elif r.scenario == "backchannel" and r.stopped_at_backchannel is not None:
            name, flag, window_end = "false_stop", r.stopped_at_backchannel, r.inject_s[1] + STOP_WINDOW_S
        else:
            continue
        twin = smooth.get((r.backend, r.source))
        if twin is None or not twin.heard_s or not r.heard_s:
            r.na[name] = "no smooth turn of the same question with audible output in this run"
            continue
        shift = twin.heard_s[0][0] - r.heard_s[0][0]
        until = min(r.stop_s, window_end) + STOP_WINDOW_S + shift
        around = span_at(fdb.merge(twin.heard_s, fdb.SYSTEM_MERGE_GAP_S), r.inject_s[0] + shift)
        if around is None or around[1] < until:
            r.na[name] = "its smooth turn had stopped by then too (a natural end?)"
            continue
        setattr(r, name, bool(flag))


def _rate(flags: list) -> dict:
    present = [bool(f) for f in flags if f is not None]
    k, n = sum(present), len(present)
    return {"value": k / n if n else None, "k": k, "n": n, "ci95": wilson_ci(k, n)}


def summarize_scenario(rows: list[TurnResult]) -> dict:
    """One scenario's summary for one backend: counts, rates (k/n with a 95% Wilson interval), time summaries."""
    live = [r for r in rows if r.status != "failed"]
    out: dict = {
        "n": len(rows),
        "n_failed": len(rows) - len(live),
        "takeover_rate": _rate([r.takeover for r in live]),
        "early_endpoint_rate": _rate([r.early_endpoint for r in live]),
    }
    for name in TURN_METRICS:
        values = [getattr(r, name) for r in live]
        if any(v is not None for v in values) or name in ("response_latency_ms", "endpoint_ms"):
            out[name] = describe(values)
    flags = {
        "pause": ("pause_takeover", "spoke_in_pause"),
        "interrupt": (
            "speaking_at_interrupt",
            "yielded",
            "stopped_by_interruption",
            "interrupt_takeover",
            "answers_interruption",
        ),
        "backchannel": (
            "speaking_at_backchannel",
            "stopped_at_backchannel",
            "resumed_after_backchannel",
            "false_stop",
        ),
    }
    scenario = rows[0].scenario if rows else "smooth"
    for name in flags.get(scenario, ()):
        out[f"{name}_rate"] = _rate([getattr(r, name) for r in live])
    reasons = sorted({why for r in live for why in r.na.values()})
    if reasons:
        out["not_counted"] = reasons
    return out


def turn_results(events: list[dict], speech_ends: dict[str, float | None]) -> list[TurnResult]:
    """Turn-taking figures of the last finished attempt of every (backend, utterance) that has them."""
    from ..latency import final_attempts, run_settings

    endpointing = run_settings(events).get("endpointing", "oracle")
    out = []
    for (b, u), evs in final_attempts(events).items():
        res = turn_result(b, u, evs, endpointing, speech_ends.get(u))
        if res is not None:
            out.append(res)
    pair_with_smooth(out)
    return out


def summarize_turns(events: list[dict], speech_ends: dict[str, float | None]) -> dict[str, dict]:
    """Per backend: ``{"endpointing": ..., "scenarios": {scenario: summary}}``; empty when no turn has them.
    ``speech_ends``: utterance id -> the end of speech in s, as harness.latency used it."""
    from ..latency import run_settings

    results = turn_results(events, speech_ends)
    endpointing = run_settings(events).get("endpointing", "oracle")
    grouped: dict[str, dict[str, list[TurnResult]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        grouped[r.backend][r.scenario].append(r)
    from .scenarios import SCENARIOS

    return {
        backend: {
            "endpointing": endpointing,
            "scenarios": {
                name: summarize_scenario(sorted(by[name], key=lambda r: r.utt))
                for name in SCENARIOS
                if name in by
            },
        }
        for backend, by in grouped.items()
    }
