"""Latency metrics on planted timelines whose answers were worked out by hand from the definitions in
harness/latency.py (and, for SimulEval's scores, from its latency_scorer.py). Sample rates 1000 Hz, times in s."""

import math

import pytest

from harness.latency import LatencySettings, summarize, utterance_latency

S = 1_000_000_000  # ns per second
REALTIME, FAST = LatencySettings(realtime=True), LatencySettings(realtime=False)


def ns(t: float) -> int:
    return int(round(t * S))


def turn(
    chunks=(),
    onset=0,
    *,
    seconds=1.0,
    speech_end_s=None,
    pushes=None,
    status="ok",
    marks=(),
    error=None,
    done=True,
    u="u1",
    b="x",
):
    """Events of one utterance: ``seconds`` of input at 1 kHz starting at t=0, pushed in 20 ms chunks when due
    (or at the given ``pushes`` (t, n)), output ``chunks`` (t, n) at 1 kHz, first audible sample ``onset``."""
    n_in = int(round(seconds * 1000))
    if pushes is None:
        pushes = [((i + 1) * 0.02, 20) for i in range(n_in // 20)]
    start = {"e": "utt_start", "t": 0, "in_sr": 1000, "out_sr": 1000, "in_samples": n_in}
    if speech_end_s is not None:
        start.update(speech_end_s=speech_end_s, speech_end_from="vad")
    evs = [start]
    evs += [{"e": "push", "t": ns(t), "n": n} for t, n in pushes]
    evs.append({"e": "input_end", "t": ns(pushes[-1][0])})
    evs += [{"e": "out", "t": ns(t), "n": n} for t, n in chunks]
    evs += [{"e": "mark", "t": ns(t), "name": name} for t, name in marks]
    last = max([pushes[-1][0]] + [t for t, _ in chunks] + [t for t, _ in marks])
    if error is not None:
        kind, at = error
        evs.append({"e": "audible", "s": onset})
        evs.append({"e": "error", "t": ns(at), "kind": kind, "reason": f"planted {kind}"})
    else:
        if done:
            evs.append({"e": "done", "t": ns(last + 0.001)})
        evs.append({"e": "audible", "s": onset})
    evs.append(
        {"e": "utt_end", "t": ns(last + 0.05), "status": status, "out_samples": sum(n for _, n in chunks)}
    )
    return [{"b": b, "u": u, "a": 1, **e} for e in evs]


def lat(evs, cfg=REALTIME, **kw):
    return utterance_latency("x", "u1", evs, cfg, **kw)


def test_trailing_silence_is_not_the_systems_credit():
    # A FLEURS-layout clip: 1 s of speech, then 1 s of silence; the answer comes 100 ms after the file ends.
    r = lat(turn([(2.1, 500)], seconds=2.0, speech_end_s=1.0))
    assert r.ttfa_ms == pytest.approx(1100.0) and r.ttfa_eof_ms == pytest.approx(100.0)
    assert r.ttfb_ms == pytest.approx(1100.0) and r.ttfb_eof_ms == pytest.approx(100.0)
    assert r.trailing_silence_ms == pytest.approx(1000.0) and r.speech_end_from == "vad"
    assert r.audio_end_from_speech_end_ms == pytest.approx(1600.0)  # played until 2.6 s
    assert r.audio_end_from_file_end_ms == pytest.approx(600.0)
    assert r.wait_limit_ms == pytest.approx(61_000.0)  # 60 s after the end of file, from the end of speech


def test_a_blocking_push_drifts_behind_the_speaker_and_ttfa_keeps_the_schedule():
    # push() takes 30 ms per 20 ms chunk: push i is handed at 20 + 30 i ms, due at 20 (i + 1) ms: 10 i ms late.
    pushes = [(0.020 + 0.030 * i, 20) for i in range(50)]  # the last one at 1.490 s, 490 ms late
    r = lat(
        turn([(1.540, 100)], pushes=pushes)
    )  # 50 ms after the last push, 540 ms after the speaker stopped
    assert r.input_lag_ms == pytest.approx(490.0) and r.input_lagged is True
    assert r.ttfa_ms == pytest.approx(540.0) and r.ttfa_eof_ms == pytest.approx(540.0)
    on_time = lat(turn([(1.1, 100)]))
    assert on_time.input_lag_ms == pytest.approx(0.0) and on_time.input_lagged is False


def _jittered(late_ms: float, n: int):
    """n 20 ms chunks, each arriving ``late_ms`` after the previous one has been played."""
    return [(1.1 + k * (0.020 + late_ms / 1000), 20) for k in range(n)]


def test_jitter_just_under_the_threshold_never_adds_up_to_a_stall():
    two = lat(turn(_jittered(0.6, 3)))  # the old player added 0.6 + 0.6 into one 1.2 ms stall
    assert two.stall_count == 0 and two.stall_ms == 0.0
    assert two.audio_end_from_speech_end_ms == pytest.approx(100 + 2 * 20.6 + 20)  # the playhead moved twice
    many = lat(turn(_jittered(0.9, 20)))  # 19 underruns of 0.9 ms: the old player counted 9 stalls
    assert many.stall_count == 0 and many.stall_ms == 0.0


def test_jitter_just_over_the_threshold_is_a_stall_each_time():
    r = lat(turn(_jittered(1.1, 20)))
    assert r.stall_count == 19 and r.stall_ms == pytest.approx(19 * 1.1)
    assert r.ttfa_ms == pytest.approx(100.0)


def test_a_mid_stream_stall():
    # Third chunk was needed at 1.3 s but arrived at 1.45 s: one stall of 150 ms; the fourth is on time.
    r = lat(turn([(1.1, 100), (1.2, 100), (1.45, 100), (1.5, 100)]))
    assert r.ttfa_ms == pytest.approx(100.0) and r.stall_count == 1 and r.stall_ms == pytest.approx(150.0)
    assert r.audio_end_from_speech_end_ms == pytest.approx(650.0)


def test_output_before_the_end_of_input():
    # 100 ms of answer at 0.101 s (while the user speaks) and 100 ms more at 1.05 s.
    r = lat(turn([(0.101, 100), (1.05, 100)]))
    assert r.ttfa_ms == pytest.approx(-899.0) and r.ttfb_ms == pytest.approx(-899.0)  # negative: kept
    assert r.audio_start_from_source_start_ms == pytest.approx(101.0)
    # generation from the end of speech: (1.05 - 1.0) / 0.2 s; the old rule counted the wait: (1.05 - 0.101) / 0.2
    assert r.rtf == pytest.approx(0.25)
    # SimulEval: delays [100, 1000] (source sent when each chunk arrived), durations [100, 100].
    # intervals (100, 100), (1000, 100): StartOffset 100, EndOffset 1100 - 1000, RTF 1100 / 1000.
    assert r.simuleval_start_offset_ms == pytest.approx(100.0)
    assert r.simuleval_end_offset_ms == pytest.approx(100.0) and r.simuleval_rtf == pytest.approx(1.1)
    # ATD: output tokens [100], [100] end at 200, 1100; source tokens [100] | [300, 300, 300] end at 100 | 400 ...
    # token 1 pairs with source token 1 (200 - 100), token 2 with source token 2 (1100 - 400): mean 400.
    assert r.simuleval_atd_ms == pytest.approx(400.0)


def test_leading_silence_ours_and_simulevals():
    # Chunk 1 arrives 100 ms after the end of input; its first 50 samples (50 ms) are silent.
    r = lat(turn([(1.1, 100), (1.2, 100)], onset=50))
    assert r.ttfb_ms == pytest.approx(100.0) and r.ttfa_ms == pytest.approx(150.0)
    assert r.audio_start_from_source_start_ms == pytest.approx(1150.0)  # user-perceived
    assert r.audio_end_from_speech_end_ms == pytest.approx(300.0)
    # SimulEval: both chunks have delay 1000; intervals (1000, 100), (1100, 100).
    assert r.simuleval_start_offset_ms == pytest.approx(
        1000.0
    ) and r.simuleval_end_offset_ms == pytest.approx(200.0)
    assert r.simuleval_rtf == pytest.approx(1.2)
    # ATD: one output token of 200 ms ending at 1200, paired with the first source token (ends at 300).
    assert r.simuleval_atd_ms == pytest.approx(900.0)
    assert r.rtf == pytest.approx(0.5)  # 100 ms between the first and the last chunk / 200 ms of audio


def test_simulevals_atd_on_a_streaming_timeline():
    # 5 pushes of 200 ms; 900 ms of output after the first push, 100 ms after the last.
    pushes = [(0.2 * (i + 1), 200) for i in range(5)]
    r = lat(turn([(0.25, 900), (1.05, 100)], pushes=pushes))
    # delays [200, 1000]; output tokens 300, 300, 300 | 100 end at 500, 800, 1100 | 1200; source tokens
    # 200 | 300, 300, 200 end at 200 | 500, 800, 1000. Pairs (SimulEval's rule): 1-1, 2-1, 3-1, then 4-2 because
    # the output ran 2 tokens ahead: (300 + 600 + 900 + 700) / 4.
    assert r.simuleval_atd_ms == pytest.approx(625.0)
    assert r.simuleval_start_offset_ms == pytest.approx(200.0) and r.simuleval_end_offset_ms == pytest.approx(
        200.0
    )
    assert r.simuleval_rtf == pytest.approx(1.2)


def test_an_all_silent_answer_is_no_answer_but_has_simulevals_offsets():
    r = lat(turn([(1.1, 100)], onset=None, status="no_answer"))
    assert r.status == "no_answer" and r.ttfb_ms == pytest.approx(100.0)
    assert r.ttfa_ms is None and r.stall_count is None and r.rtf is None
    assert r.simuleval_start_offset_ms == pytest.approx(
        1000.0
    ) and r.simuleval_end_offset_ms == pytest.approx(100.0)


def test_a_log_from_before_no_answer_existed():
    # Round 1 called a finished, never-audible turn "ok" and had no speech end in utt_start.
    old = lat(turn([(1.1, 100)], onset=None, status="ok"))
    assert old.status == "no_answer" and old.speech_end_from == "file_end"
    silent = lat(turn([], onset=None, status="ok"))
    assert silent.status == "no_answer" and silent.ttfb_ms is None and silent.audio_out_s == 0
    rederived = lat(turn([(1.1, 100)], seconds=2.0), speech_end_s=0.5, speech_end_from="vad")
    assert rederived.ttfa_ms == pytest.approx(600.0) and rederived.speech_end_from == "vad"


def test_a_truncated_answer_keeps_its_ttfa_and_marks():
    evs = turn(
        [(1.2, 100), (1.3, 100)], marks=[(1.15, "asr_final")], status="truncated", error=("timeout", 1.35)
    )
    r = lat(evs)
    assert r.status == "truncated" and r.ttfa_ms == pytest.approx(200.0) and r.ttfb_ms == pytest.approx(200.0)
    assert r.marks == {"asr_final": pytest.approx(150.0)}
    assert r.stall_count is None and r.rtf is None and r.audio_end_from_speech_end_ms is None
    assert r.simuleval_end_offset_ms is None  # the answer is incomplete
    assert r.busy_end_ns == ns(1.35)  # the session was open until the cut
    s = summarize(evs)["x"]
    assert (s["n_truncated"], s["n_answered"], s["answer_rate"]) == (1, 1, 1.0)
    assert s["ttfa_ms"]["n"] == 1 and s["truncated"] == [
        {"utt": "u1", "kind": "timeout", "reason": "planted timeout"}
    ]
    assert s["failures"] == [] and s["marks"]["asr_final"]["n"] == 1


def test_marks_are_relative_to_the_end_of_speech():
    r = lat(turn([(1.5, 100)], marks=[(1.3, "asr_final")], speech_end_s=0.8))
    assert r.marks == {"asr_final": pytest.approx(500.0)}


def test_fast_pacing_measures_from_the_hand_over_of_the_last_voiced_chunk():
    pushes = [(0.0001 * (i + 1), 20) for i in range(50)]  # as fast as the backend takes them
    r = lat(turn([(0.105, 100)], pushes=pushes, speech_end_s=0.5), cfg=FAST)
    # samples 480-499 (the last voiced one: 499) were handed over with push 25, at 2.5 ms; the file at 5 ms
    assert r.ttfa_ms == pytest.approx(102.5) and r.ttfa_eof_ms == pytest.approx(100.0)
    assert r.input_lag_ms is None and r.audio_start_from_source_start_ms is None
    assert r.audio_end_from_speech_end_ms is None and r.stall_count == 0


def _summary(turns):
    return summarize([{"e": "run", "settings": {"pacing": "realtime", "timeout_s": 60}}, *turns])["x"]


def test_unanswered_turns_are_counted_and_censored():
    turns = [turn([(1.0 + d, 100)], u=f"a{i}") for i, d in enumerate([0.1, 0.2, 0.3, 0.4])]
    turns.append(turn([(1.1, 100)], onset=None, status="no_answer", u="silent"))
    turns.append(turn(error=("crash", 1.2), status="failed", u="crashed", onset=None))
    s = _summary([e for t in turns for e in t])
    assert (s["n"], s["n_ok"], s["n_no_answer"], s["n_failed"], s["n_answered"]) == (6, 4, 1, 1, 4)
    assert s["answer_rate"] == pytest.approx(4 / 6) and s["no_answer"] == ["silent"]
    lo, hi = s["answer_rate_ci95"]
    assert lo < 4 / 6 < hi
    assert s["ttfa_ms"]["n"] == 4 and s["ttfa_ms"]["p50"] == pytest.approx(250.0)  # answered turns only
    km = s["ttfa_km"]
    # S(t) = 5/6, 4/6, 3/6, 2/6 after the answers at 100, 200, 300, 400 ms: S is exactly 1/2 from 300 to 400 ms,
    # so the median is their midpoint (R's convention); S never reaches 0.05: p95 is not reached.
    assert (km["n"], km["n_events"], km["n_censored"]) == (6, 4, 2)
    assert km["p50"] == pytest.approx(350.0) and km["p95"] is None and km["p95_reached"] is False


def test_not_answering_cannot_improve_the_censored_median():
    delays = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    honest = _summary([e for i, d in enumerate(delays) for e in turn([(1.0 + d, 100)], u=f"u{i}")])
    quiet = _summary(
        [
            e
            for i, d in enumerate(delays)
            for e in (
                turn([(1.0 + d, 100)], u=f"u{i}")
                if i < 4
                else turn([(1.0 + d, 100)], onset=None, status="no_answer", u=f"u{i}")
            )
        ]
    )
    assert quiet["ttfa_ms"]["p50"] < honest["ttfa_ms"]["p50"]  # the plain percentile rewards silence ...
    assert quiet["ttfa_km"]["p50"] == honest["ttfa_km"]["p50"] == pytest.approx(350.0)  # ... KM does not
    assert honest["ttfa_km"]["p50"] == honest["ttfa_ms"]["p50"]  # all answered: the KM median is the median


def test_rtfx_counts_backend_time_only_and_failed_turns_add_no_audio():
    ok = turn([(1.1, 100)], u="ok")  # session open 0 -> done at 1.101 s, the harness then works until 1.15 s
    failed = [
        dict(e, t=e["t"] + ns(10)) if "t" in e else e
        for e in turn(error=("crash", 0.5), status="failed", u="f")
    ]
    s = _summary(ok + failed)
    assert s["busy_s"] == pytest.approx(1.101 + 0.5) and s["audio_in_ok_s"] == pytest.approx(1.0)
    assert s["rtfx"] == pytest.approx(1.0 / 1.601)
    assert _summary(failed)["rtfx"] == 0.0  # the round-1 rule counted a failed turn's audio as throughput


def test_only_the_last_finished_attempt_counts():
    first = [dict(e, a=1) for e in turn([(1.1, 100)])]
    second = [dict(e, a=2) for e in turn([(1.3, 100)])]
    unfinished = [dict(e, a=3) for e in turn([(1.9, 100)]) if e["e"] != "utt_end"]
    s = summarize(first + second + unfinished)["x"]
    assert s["n"] == 1 and s["ttfa_ms"]["p50"] == pytest.approx(300.0)


def test_percentiles_come_with_intervals():
    turns = [turn([(1.0 + d, 100)], u=f"u{i}") for i, d in enumerate([0.1, 0.2, 0.3, 0.4])]
    s = summarize([e for t in turns for e in t])["x"]["ttfa_ms"]
    assert s["n"] == 4 and s["p50"] == pytest.approx(250.0) and s["mean"] == pytest.approx(250.0)
    for stat in ("mean", "p50", "p90", "p95", "p99"):
        lo, hi = s[f"{stat}_ci95"]
        assert 100.0 - 1e-9 <= lo <= s[stat] <= hi <= 400.0 + 1e-9, stat
    assert not math.isnan(s["p99"])


def test_kaplan_meier_quantiles_by_hand():
    from harness.stats import km_quantile, wilson_ci

    # events at 1, 3, 4; censored at 2 and 5. S: 1 -> 4/5; 3 -> 4/5 * 2/3 = 8/15; 4 -> 8/15 * 1/2 = 4/15.
    times, observed = [1, 2, 3, 4, 5], [True, False, True, True, False]
    assert km_quantile(times, observed, 0.2) == 2.0  # S = 0.8 = 1 - 0.2 exactly from 1 to 3: their midpoint
    assert km_quantile(times, observed, 0.1) == 1.0  # S(1) = 0.8 < 0.9
    assert km_quantile(times, observed, 0.5) == 4.0  # S(3) = 0.533 > 0.5, S(4) = 0.267
    assert math.isinf(km_quantile(times, observed, 0.95))  # S never gets to 0.05
    assert km_quantile([5, 1, 3], [True, True, True], 0.5) == 3.0  # no censoring: the sample median
    assert km_quantile([4, 1, 3, 2], [True] * 4, 0.5) == 2.5  # S = 1/2 exactly from 2 to 3: the midpoint
    lo, hi = wilson_ci(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.27753, abs=1e-5)
