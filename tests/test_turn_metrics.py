"""Turn-taking metrics (harness.turns.metrics, .timeline) on hand-made event logs with planted timelines: every
expected value below is worked out by hand from the definitions."""

import numpy as np
import pytest

from harness.latency import summarize, utterance_latency
from harness.turns.metrics import TurnResult, pair_with_smooth, turn_result
from harness.turns.timeline import heard_spans, output_activity, play

SR = 16000
T0 = 10**12  # ns
NS = 10**9


def at(s: float) -> int:
    return T0 + int(round(s * NS))


class Log:
    """Events of one planted turn: the system's audible output is given as (arrival s, seconds of audio)."""

    def __init__(self, utt="q.smooth", plan=None, speech_end_s=2.0, file_s=2.2):
        self.utt, self.events, self.samples = utt, [], 0
        start = {"e": "utt_start", "t": T0, "in_sr": SR, "out_sr": SR, "in_samples": int(file_s * SR)}
        start.update({"audio_s": file_s, "speech_end_s": speech_end_s, "speech_end_from": "annotation"})
        if plan is not None:
            start["turns"] = plan
        self.add(start)
        for i in range(int(file_s / 0.02)):
            self.add({"e": "push", "t": at(0.02 * (i + 1)), "n": 320})

    def add(self, ev):
        self.events.append({"b": "sys", "u": self.utt, "a": 1, **ev})

    def audio(self, arrive_s: float, seconds: float, realtime=True):
        """Audible output of ``seconds``, arriving at once or in 20 ms chunks as it is played."""
        pieces = (
            [(arrive_s, seconds)]
            if not realtime
            else [(arrive_s + 0.02 * k, 0.02) for k in range(round(seconds / 0.02))]
        )
        for t, length in pieces:
            self.add({"e": "out", "t": at(t), "n": int(round(length * SR))})
            self.samples += int(round(length * SR))

    def mark(self, name, t):
        self.add({"e": "mark", "t": at(t), "name": name})

    def inject(self, what, start, end):
        self.add(
            {
                "e": "inject",
                "t": at(start),
                "what": what,
                "at_s": start,
                "speech_s": [start, end],
                "label": "x",
            }
        )

    def end(self, status="ok"):
        self.add({"e": "done", "t": at(30)})
        self.add({"e": "audible", "s": 0 if self.samples else None})
        self.add({"e": "out_activity", "segments": [[0, self.samples]] if self.samples else []})
        self.add({"e": "utt_end", "t": at(30), "status": status, "out_samples": self.samples})
        return self.events

    def result(self, endpointing="system", speech_end_s=None):
        evs = self.end()
        start = evs[0]
        return turn_result("sys", self.utt, evs, endpointing, speech_end_s or start["speech_end_s"])


def test_audible_segments_of_a_planted_signal():
    x = np.zeros(int(1.5 * SR), np.float32)
    x[int(0.2 * SR) : int(0.5 * SR)] = 0.1  # -20 dBFS
    x[int(0.55 * SR) : int(0.75 * SR)] = 0.1  # 50 ms gap: joined
    x[int(1.05 * SR) : int(1.15 * SR)] = 0.1  # 300 ms gap: apart
    x[int(1.3 * SR) : int(1.4 * SR)] = 0.001  # -60 dBFS: inaudible
    assert output_activity(x, SR) == [(3200, 12000), (16800, 18400)]
    assert output_activity(np.zeros(0, np.float32), SR) == []


def test_the_player_equals_the_latency_player_without_flushes_and_drops_unplayed_audio_at_a_barge_in():
    chunks = [("out", at(1.0), 16000), ("out", at(1.2), 8000), ("out", at(3.0), 8000)]
    pieces = play(chunks, SR)
    assert [(p.start_ns, p.first, p.n) for p in pieces] == [
        (at(1.0), 0, 16000),
        (at(2.0), 16000, 8000),
        (at(3.0), 24000, 8000),
    ]
    flushed = play([chunks[0], chunks[1], ("flush", at(1.75), 0), chunks[2]], SR)
    # 0.75 s of the first chunk was heard; the second, queued behind it, never is; the third plays on arrival
    assert [(p.start_ns, p.first, p.n) for p in flushed] == [(at(1.0), 0, 12000), (at(3.0), 24000, 8000)]
    spans = heard_spans([(0, 32000)], flushed, T0, SR)
    assert spans == [pytest.approx((1.0, 1.75)), pytest.approx((3.0, 3.5))]


def test_smooth_turn_takeover_latency_and_endpointing_cost():
    log = Log()
    log.mark("endpoint", 2.5)
    log.audio(2.6, 1.5)
    r = log.result()
    assert (r.takeover, r.response_latency_ms, r.endpoint_ms) == (1, pytest.approx(600), pytest.approx(500))
    assert r.early_endpoint is False


def test_a_short_blip_is_not_a_turn_and_an_early_answer_has_zero_latency():
    log = Log()
    log.audio(2.3, 0.4)
    assert log.result().takeover == 0
    early = Log()
    early.audio(1.8, 2.0)
    r = early.result()
    assert (r.takeover, r.response_latency_ms) == (1, 0.0)


@pytest.mark.parametrize(
    ("start", "seconds", "pause_takeover", "spoke"),
    [(1.6, 0.7, 0, True), (1.5, 1.3, 1, True), (3.3, 2.0, 0, False)],
)
def test_pause_takeover_counts_output_before_the_real_end(start, seconds, pause_takeover, spoke):
    log = Log(
        "q.pause", {"scenario": "pause", "source": "q", "pause_s": [1.0, 2.0]}, speech_end_s=3.0, file_s=3.2
    )
    log.audio(start, seconds)
    r = log.result()
    assert (r.pause_takeover, r.spoke_in_pause) == (pause_takeover, spoke)


def test_interrupt_yield_stop_latency_and_new_answer():
    log = Log("q.interrupt", {"scenario": "interrupt", "source": "q"})
    log.audio(2.6, 1.3)  # heard 2.6-3.9, in real time
    log.inject("interrupt", 3.6, 5.0)
    log.mark("barge_in", 3.9)
    log.audio(5.7, 1.0)
    r = log.result()
    assert r.speaking_at_interrupt and r.yielded
    assert r.time_to_yield_ms == pytest.approx(300)
    assert r.stop_latency_ms == pytest.approx(300)  # FDB v1.5: the overlap [3.6, 3.9]
    assert (r.interrupt_takeover, r.interrupt_latency_ms, r.answers_interruption) == (
        1,
        pytest.approx(700),
        True,
    )


def test_a_system_that_talks_over_the_interruption_has_not_yielded():
    log = Log("q.interrupt", {"scenario": "interrupt", "source": "q"})
    log.audio(2.6, 4.0)  # 2.6-6.6, through the whole interruption
    log.inject("interrupt", 3.6, 5.0)
    r = log.result()
    assert r.time_to_yield_ms == pytest.approx(3000) and not r.yielded
    assert r.stop_latency_ms == pytest.approx(1400)  # FDB caps it at the user's end: min(3.0, 1.4) s
    assert r.interrupt_takeover == 1 and not r.answers_interruption  # FDB's TOR is 1: it kept talking


@pytest.mark.parametrize(("twin_seconds", "stopped"), [(4.0, True), (1.5, None)])
def test_a_yield_counts_as_the_interruptions_doing_only_when_the_answer_would_have_gone_on(
    twin_seconds, stopped
):
    log = Log("q.interrupt", {"scenario": "interrupt", "source": "q"})
    log.audio(2.6, 1.3)
    log.inject("interrupt", 3.6, 5.0)
    twin = Log("q.smooth", {"scenario": "smooth", "source": "q"})
    twin.audio(2.6, twin_seconds)  # 4 s: on through 5.0; 1.5 s: ends at 4.1 by itself
    results = [log.result(), twin.result()]
    pair_with_smooth(results)
    assert results[0].yielded and results[0].stopped_by_interruption is stopped


def test_a_buffered_answer_is_cut_where_the_barge_in_stops_the_player():
    log = Log("q.interrupt", {"scenario": "interrupt", "source": "q"})
    log.audio(2.6, 4.0, realtime=False)  # the whole answer at once, as an offline backend sends it
    log.inject("interrupt", 3.6, 5.0)
    log.mark("barge_in", 3.85)
    assert log.result().time_to_yield_ms == pytest.approx(250)


def _backchannel(stop_at=None, twin_seconds=4.0, resume_at=None):
    bc = Log("q.backchannel", {"scenario": "backchannel", "source": "q"})
    bc.audio(2.6, (stop_at or 6.6) - 2.6)
    bc.inject("backchannel", 3.6, 4.0)
    if stop_at:
        bc.mark("barge_in", stop_at)
    if resume_at:
        bc.audio(resume_at, 1.0)
    twin = Log("q.smooth", {"scenario": "smooth", "source": "q"})
    twin.audio(2.6, twin_seconds)
    results = [bc.result(), twin.result()]
    pair_with_smooth(results)
    return results[0]


def test_a_stop_at_a_backchannel_is_false_when_the_same_answer_goes_on_without_it():
    r = _backchannel(stop_at=3.85)
    assert (r.speaking_at_backchannel, r.stopped_at_backchannel, r.false_stop) == (True, True, True)


@pytest.mark.parametrize(("resume_at", "resumed"), [(None, False), (4.5, True), (6.0, False)])
def test_a_stop_at_a_backchannel_may_be_resumed_within_two_seconds(resume_at, resumed):
    r = _backchannel(stop_at=3.85, resume_at=resume_at)
    assert r.false_stop and r.resumed_after_backchannel is resumed


def test_going_on_through_a_backchannel_is_no_false_stop():
    r = _backchannel()
    assert (r.stopped_at_backchannel, r.false_stop) == (False, False)


def test_a_stop_where_the_answer_ends_anyway_is_not_counted():
    r = _backchannel(stop_at=3.85, twin_seconds=1.7)  # the twin ends at 4.3, before 4.0 + 0.5
    assert r.false_stop is None and "natural end" in r.na["false_stop"]


def test_oracle_turns_without_a_scenario_have_no_turn_figures_and_injections_say_why_not():
    log = Log()
    log.audio(2.2, 1.0)
    assert log.result(endpointing="oracle") is None
    plan = Log("q.interrupt", {"scenario": "interrupt", "source": "q"})
    plan.audio(2.2, 1.0)
    r = plan.result(endpointing="oracle")
    assert r.takeover == 1 and r.speaking_at_interrupt is None and "endpointing=oracle" in r.na["interrupt"]


def test_summaries_carry_turns_and_latency_covers_the_first_answer():
    log = Log("q.interrupt", {"scenario": "interrupt", "source": "q"})
    log.audio(2.6, 1.3)
    log.inject("interrupt", 3.6, 5.0)
    log.mark("barge_in", 3.9)
    log.audio(5.7, 1.0)
    evs = [{"e": "run", "t": T0 - 1, "settings": {"pacing": "realtime", "endpointing": "system"}}, *log.end()]
    lat = utterance_latency("sys", log.utt, evs[1:])
    assert lat.stall_count == 0  # the second answer, 1.8 s later, is not a stall of the first
    # the first answer is what was received before the user spoke again (3.6 s): played until then
    assert lat.audio_end_from_speech_end_ms == pytest.approx(1600)
    turns = summarize(evs)["sys"]["turns"]
    assert turns["endpointing"] == "system"
    interrupt = turns["scenarios"]["interrupt"]
    assert interrupt["yielded_rate"]["value"] == 1.0 and interrupt["time_to_yield_ms"][
        "p50"
    ] == pytest.approx(300)


def test_docs_carry_every_turn_taking_definition_verbatim():
    from pathlib import Path

    from harness.report.definitions import TURNS_BEGIN, TURNS_END, turn_definitions, turns_markdown

    text = (Path(__file__).resolve().parents[1] / "docs" / "turn-taking.md").read_text(encoding="utf-8")
    block = text[text.index(TURNS_BEGIN) : text.index(TURNS_END) + len(TURNS_END)]
    assert block == turns_markdown(), (
        "stale: run `python -m harness.report.definitions --turns docs/turn-taking.md`"
    )
    names = set(turn_definitions())
    fields = {
        f
        for f in TurnResult.__dataclass_fields__
        if f not in ("backend", "utt", "scenario", "source", "status", "na", "heard_s", "inject_s", "stop_s")
    }
    assert fields <= names, fields - names
