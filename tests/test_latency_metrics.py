"""Latency metrics on hand-built timelines whose answers were worked out by hand (sample rate 1000 Hz, times in s)."""

import pytest

from harness.latency import busy_seconds, summarize, utterance_latency

S = 1_000_000_000  # ns per second


def timeline(chunks, onset, input_end=1.0, pacing="realtime", status="ok", extra=()):
    """Events of one utterance: 1 s of input (1000 samples at 1 kHz) starting at t=0, output chunks (t, n)."""
    evs = [
        {
            "e": "utt_start",
            "b": "x",
            "u": "u1",
            "a": 1,
            "t": 0,
            "in_sr": 1000,
            "out_sr": 1000,
            "in_samples": 1000,
        },
        {"e": "input_end", "b": "x", "u": "u1", "a": 1, "t": int(input_end * S)},
    ]
    evs += [{"e": "out", "b": "x", "u": "u1", "a": 1, "t": int(t * S), "n": n} for t, n in chunks]
    evs += list(extra)
    evs.append({"e": "audible", "b": "x", "u": "u1", "a": 1, "s": onset})
    end_t = int(max([input_end] + [t for t, _ in chunks]) * S) + 1
    evs.append({"e": "utt_end", "b": "x", "u": "u1", "a": 1, "t": end_t, "status": status})
    return evs


def metrics(evs, realtime=True):
    return utterance_latency("x", "u1", evs, realtime)


def test_leading_silence_counts_its_real_duration():
    # Chunk 1 arrives 100 ms after input end; its first 50 samples (50 ms) are silent.
    r = metrics(timeline([(1.1, 100), (1.2, 100)], onset=50))
    assert r.ttfb_ms == pytest.approx(100.0)
    assert r.ttfa_ms == pytest.approx(150.0)
    assert r.stall_count == 0 and r.stall_ms == 0
    assert r.start_offset_ms == pytest.approx(1150.0)  # heard at 1.15 s on the source clock
    assert r.end_offset_ms == pytest.approx(300.0)  # last sample played at 1.3 s, source ended at 1.0 s
    assert r.rtf == pytest.approx(1.0)  # 200 ms of output produced over 200 ms
    assert r.audio_out_s == pytest.approx(0.2)


def test_output_that_starts_before_input_ends_is_negative():
    r = metrics(timeline([(0.9, 200)], onset=0))
    assert r.ttfb_ms == pytest.approx(-100.0)
    assert r.ttfa_ms == pytest.approx(-100.0)
    assert r.rtf == pytest.approx(0.0)


def test_silent_output_has_ttfb_but_no_ttfa():
    r = metrics(timeline([(1.05, 100)], onset=None))
    assert r.ttfb_ms == pytest.approx(50.0)
    assert r.ttfa_ms is None and r.stall_count is None


def test_no_output_at_all():
    r = metrics(timeline([], onset=None))
    assert r.status == "ok" and r.ttfb_ms is None and r.ttfa_ms is None and r.audio_out_s == 0


def test_mid_stream_stall():
    # Third chunk was needed at 1.3 s but arrived at 1.45 s: one stall of 150 ms; the fourth is on time.
    r = metrics(timeline([(1.1, 100), (1.2, 100), (1.45, 100), (1.5, 100)], onset=0))
    assert r.ttfa_ms == pytest.approx(100.0)
    assert r.stall_count == 1
    assert r.stall_ms == pytest.approx(150.0)
    assert r.end_offset_ms == pytest.approx(650.0)


def test_jitter_below_min_stall_is_not_a_stall():
    r = utterance_latency("x", "u1", timeline([(1.1, 100), (1.2005, 100)], onset=0), True, min_stall_ms=1.0)
    assert r.stall_count == 0


def test_a_late_chunk_before_the_onset_delays_ttfa_not_stalls():
    # Silence chunk at 1.0 s (100 ms long), the audible chunk arrives late at 1.3 s: TTFA 300 ms, no stall.
    r = metrics(timeline([(1.0, 100), (1.3, 100)], onset=100))
    assert r.ttfb_ms == pytest.approx(0.0)
    assert r.ttfa_ms == pytest.approx(300.0)
    assert r.stall_count == 0


def test_offsets_only_in_realtime_pacing():
    r = metrics(timeline([(1.1, 100)], onset=0), realtime=False)
    assert r.start_offset_ms is None and r.end_offset_ms is None and r.ttfa_ms == pytest.approx(100.0)


def test_marks_are_relative_to_input_end():
    mark = {"e": "mark", "b": "x", "u": "u1", "a": 1, "t": int(1.3 * S), "name": "asr_final"}
    r = metrics(timeline([(1.5, 100)], onset=0, extra=[mark]))
    assert r.marks == {"asr_final": pytest.approx(300.0)}


def test_failed_utterance_is_counted_with_its_reason_and_not_timed():
    err = {"e": "error", "b": "x", "u": "u1", "a": 1, "t": int(1.2 * S), "kind": "crash", "reason": "boom"}
    evs = timeline([(1.1, 100)], onset=0, status="failed", extra=[err])
    s = summarize([{"e": "run", "settings": {"pacing": "realtime"}}, *evs])["x"]
    assert s["n"] == 1 and s["n_ok"] == 0 and s["n_failed"] == 1
    assert s["failures"] == [{"utt": "u1", "kind": "crash", "reason": "boom"}]
    assert s["ttfa_ms"] == {"n": 0}


def test_only_the_last_finished_attempt_counts():
    first = [dict(e, a=1) for e in timeline([(1.1, 100)], onset=0)]
    second = [dict(e, a=2) for e in timeline([(1.3, 100)], onset=0)]
    unfinished = [dict(e, a=3) for e in timeline([(1.9, 100)], onset=0) if e["e"] != "utt_end"]
    s = summarize(first + second + unfinished)["x"]
    assert s["n"] == 1 and s["ttfa_ms"]["p50"] == pytest.approx(300.0)


def test_percentiles_and_ci_over_utterances():
    evs = []
    for i, delay in enumerate([0.1, 0.2, 0.3, 0.4]):
        evs += [dict(e, u=f"u{i}") for e in timeline([(1.0 + delay, 100)], onset=0)]
    s = summarize(evs)["x"]["ttfa_ms"]
    assert s["n"] == 4 and s["p50"] == pytest.approx(250.0) and s["mean"] == pytest.approx(250.0)
    assert s["min"] == pytest.approx(100.0) and s["max"] == pytest.approx(400.0)
    lo, hi = s["mean_ci95"]
    assert 100.0 <= lo < 250.0 < hi <= 400.0


def test_busy_seconds_merges_overlapping_sessions():
    assert busy_seconds([(0, 2 * S), (1 * S, 3 * S), (5 * S, 6 * S)]) == pytest.approx(4.0)
