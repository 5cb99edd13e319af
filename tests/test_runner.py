"""The runner: fault handling, pacing, bad input, resume after a kill, rescore."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from harness.data import Utterance
from harness.events import read_events
from harness.latency import summarize
from harness.results import load_run
from harness.runner import RunError, run_benchmark


def clips(n=6, seconds=0.3, sr=16000):
    rng = np.random.default_rng(1)
    return [
        Utterance(
            id=f"c{i}",
            sample_rate=sr,
            duration_s=seconds,
            audio_array=(0.2 * rng.standard_normal(int(seconds * sr))).astype(np.float32),
        )
        for i in range(n)
    ]


def run(tmp_path, backends, utts=None, **kw):
    kw.setdefault("pacing", "fast")
    kw.setdefault("progress", False)
    return load_run(run_benchmark(backends, utterances=utts or clips(), out=tmp_path / "run", **kw))


def test_crash_every_third_fails_a_third_with_reasons(tmp_path):
    r = run(tmp_path, ["loopback:fail=crash,every=3"], clips(12))
    s = r.summary["loopback:fail=crash,every=3"]
    assert (s["n"], s["n_ok"], s["n_failed"]) == (12, 8, 4)
    assert all(f["kind"] == "crash" and "planned crash" in f["reason"] for f in s["failures"])


def test_hang_is_cut_by_the_timeout_and_the_run_goes_on(tmp_path):
    r = run(tmp_path, ["loopback:fail=hang,every=2"], clips(4), timeout_s=0.3)
    s = r.summary["loopback:fail=hang,every=2"]
    assert s["n_ok"] == 2 and s["n_failed"] == 2
    assert all(f["kind"] == "hang" and "poll" in f["reason"] for f in s["failures"])


def test_slow_answer_is_a_timeout(tmp_path):
    r = run(tmp_path, ["loopback:delay_ms=5000"], clips(1), timeout_s=0.2, warmup=0)
    (failure,) = r.summary["loopback:delay_ms=5000"]["failures"]
    assert failure["kind"] == "timeout"


def test_bad_input_is_named_and_skipped(tmp_path):
    good = clips(2)
    nan = np.full(8000, np.nan, np.float32)
    bad = [
        Utterance(id="nan", sample_rate=16000, audio_array=nan),
        Utterance(id="empty", sample_rate=16000, audio_array=np.zeros(0, np.float32)),
        Utterance(id="missing", audio_path=str(tmp_path / "nope.wav")),
    ]
    r = run(tmp_path, ["loopback"], good + bad)
    s = r.summary["loopback"]
    assert s["n_ok"] == 2
    reasons = {f["utt"]: f["reason"] for f in s["failures"]}
    assert "NaN" in reasons["nan"] and "no samples" in reasons["empty"] and "nope.wav" in reasons["missing"]


def test_realtime_pacing_never_delivers_early(tmp_path):
    utts = clips(2, seconds=0.2)
    r = run(tmp_path, ["loopback:delay_ms=30"], utts, pacing="realtime", chunk_ms=20)
    for u in ("c0", "c1"):
        evs = [e for e in r.events if e.get("u") == u]
        t0 = next(e["t"] for e in evs if e["e"] == "utt_start")
        pushes = [e for e in evs if e["e"] == "push"]
        assert len(pushes) == 10 and sum(e["n"] for e in pushes) == 3200
        for i, e in enumerate(pushes):  # chunk i is complete only 20*(i+1) ms after the speaker started
            assert e["t"] - t0 >= (i + 1) * 20_000_000
    ttfa = r.summary["loopback:delay_ms=30"]["ttfa_ms"]
    assert ttfa["n"] == 2 and ttfa["min"] >= 30.0  # the answer cannot come before the delay


def test_outputs_are_saved_and_equal_the_trimmed_input(tmp_path):
    utts = clips(1)
    r = run(tmp_path, ["loopback"], utts)
    audio, sr = r.output_audio("loopback", "c0")
    assert sr == 16000
    np.testing.assert_allclose(audio, utts[0].audio_array, atol=1e-7)


def test_rescore_from_the_event_log_alone_is_exact(tmp_path):
    r = run(tmp_path, ["loopback:delay_ms=10", "loopback:fail=crash,every=2"], clips(4))
    assert json.dumps(summarize(read_events(r.path / "events.jsonl")), sort_keys=True) == json.dumps(
        r.summary, sort_keys=True
    )


def test_backends_are_interleaved(tmp_path):
    r = run(tmp_path, ["loopback", "loopback:delay_ms=1"], clips(3))
    order = [e["b"] for e in r.events if e["e"] == "utt_start"]
    assert order == ["loopback", "loopback:delay_ms=1"] * 3


def test_a_folder_holding_a_run_needs_resume(tmp_path):
    run(tmp_path, ["loopback"], clips(1))
    with pytest.raises(RunError, match="--resume"):
        run(tmp_path, ["loopback"], clips(1))


def test_resume_with_other_settings_is_refused(tmp_path):
    run(tmp_path, ["loopback"], clips(2))
    with pytest.raises(RunError, match="settings differ"):
        run(tmp_path, ["loopback"], clips(2), chunk_ms=40, resume=True)


def test_backend_that_cannot_load_fails_its_utterances_and_others_go_on(tmp_path, monkeypatch):
    from backends.loopback import LoopbackBackend

    def broken_load(self):
        if self.opts["delay_ms"] == 7:
            raise RuntimeError("weights missing at /nowhere")

    monkeypatch.setattr(LoopbackBackend, "load", broken_load)
    r = run(tmp_path, ["loopback:delay_ms=7", "loopback"], clips(2))
    assert r.summary["loopback"]["n_ok"] == 2
    s = r.summary["loopback:delay_ms=7"]
    assert s["n_failed"] == 2 and all("weights missing" in f["reason"] for f in s["failures"])


def test_killed_run_resumes_without_losing_or_redoing_anything(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        "--backend",
        "loopback:delay_ms=20",
        "--limit",
        "10",
        "--pacing",
        "realtime",
        "--out",
        str(out),
        "--quiet",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "S2S_BENCH_LOAD_PLUGINS": ""},
    )
    deadline = time.monotonic() + 120
    finished_first = set()
    while time.monotonic() < deadline and len(finished_first) < 3:
        time.sleep(0.2)
        finished_first = {e["u"] for e in read_events(out / "events.jsonl") if e["e"] == "utt_end"}
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 3 <= len(finished_first) < 10, "the run was not interrupted midway"

    subprocess.run(
        cmd + ["--resume"],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "S2S_BENCH_LOAD_PLUGINS": ""},
    )
    r = load_run(out)
    s = r.summary["loopback:delay_ms=20"]
    assert s["n"] == 10 and s["n_ok"] == 10
    ends = [e for e in r.events if e["e"] == "utt_end"]
    assert len({e["u"] for e in ends}) == 10 and len(ends) == 10  # nothing redone, nothing lost
    assert r.meta["status"] == "complete"


def test_long_backend_specs_get_short_unique_output_folders(tmp_path):
    from harness.results import slug

    a, b = "x:" + "path=/very/long/" * 30 + "a", "x:" + "path=/very/long/" * 30 + "b"
    assert len(slug(a)) <= 96 and slug(a) != slug(b)
    assert slug("loopback:delay_ms=150") == "loopback_delay_ms=150"


def test_a_job_waiting_in_the_queue_is_not_counted_as_hung(tmp_path, monkeypatch):
    # Deadlines start when an utterance starts, not when the run plans it: a long queue must not look like a hang.
    import harness.runner as runner

    monkeypatch.setattr(runner, "LOAD_ALLOWANCE_S", 0.2)
    slow_read = Utterance.load_audio

    def load_audio(self, sr):  # a slow disk: reading takes 50 ms
        time.sleep(0.05)
        return slow_read(self, sr)

    monkeypatch.setattr(Utterance, "load_audio", load_audio)
    # 8 answers of 0.5 s each: the last starts ~4 s after planning, past timeout + grace + allowance (2.9 s).
    r = run(tmp_path, ["loopback:delay_ms=500"], clips(8), timeout_s=0.7, warmup=0)
    s = r.summary["loopback:delay_ms=500"]
    assert s["n_ok"] == 8, s["failures"]


# ---------------------------------------------------------------- round 2: end of speech, statuses


def test_ttfa_is_measured_from_the_end_of_speech_found_before_timing(tmp_path):
    # A FLEURS-layout clip: Telugu speech, then 1 s of silence. loopback answers 100 ms after the end of input.
    from test_vad import telugu_with_silence

    audio, spoken_until = telugu_with_silence(1.0)
    utt = Utterance(id="fleurs-like", sample_rate=16000, audio_array=audio)
    r = run(tmp_path, ["loopback:delay_ms=100"], [utt], pacing="realtime", vad="energy", warmup=0)
    (start,) = [e for e in r.events if e["e"] == "utt_start"]
    assert start["speech_end_from"] == "vad" and abs(start["speech_end_s"] - spoken_until) < 0.1
    assert r.meta["vad"]["method"] == "energy" and r.meta["settings"]["vad"] == "energy"
    s = r.summary["loopback:delay_ms=100"]
    trailing = s["trailing_silence_ms"]["p50"]
    assert 900 < trailing < 1100
    # both on the speaker's schedule: they differ by exactly the trailing silence, whatever the machine does
    assert s["ttfa_ms"]["p50"] - s["ttfa_eof_ms"]["p50"] == pytest.approx(trailing, abs=1e-6)
    assert s["ttfa_ms"]["p50"] >= trailing + 100  # the listener waited for the silence and the delay


def test_a_blocking_push_shows_as_input_lag_and_in_ttfa(tmp_path, monkeypatch):
    from backends import loopback

    real_push = loopback._LoopbackSession.push

    def slow_push(self, pcm):  # 30 ms for each 20 ms chunk: the harness falls behind the speaker
        time.sleep(0.03)
        real_push(self, pcm)

    monkeypatch.setattr(loopback._LoopbackSession, "push", slow_push)
    r = run(tmp_path, ["loopback"], clips(1, seconds=0.5), pacing="realtime", warmup=0)
    s = r.summary["loopback"]
    lag = s["input_lag_ms"]["max"]
    assert lag >= 24 * 10  # 25 chunks, each push 10 ms later than the one before (at least)
    assert s["input_lagged"] == [{"utt": "c0", "input_lag_ms": lag}]
    assert s["ttfa_ms"]["p50"] >= lag  # measured from the schedule, not from the late last push


def test_an_answer_cut_by_the_timeout_is_truncated_and_keeps_its_ttfa(tmp_path):
    from harness.metrics import score_run
    from harness.rescore import check_run

    # chunk k of the echo is ready 3 x 20 ms after chunk k-1: 0.8 s of answer needs 2.4 s; the timeout is 0.5 s
    r = run(tmp_path, ["loopback:rtf=3"], clips(1, seconds=0.8), timeout_s=0.5, warmup=0)
    s = r.summary["loopback:rtf=3"]
    assert (s["n_truncated"], s["n_failed"], s["n_answered"]) == (1, 0, 1)
    assert s["truncated"][0]["kind"] == "timeout" and s["ttfa_ms"]["n"] == 1 and s["ttfb_ms"]["n"] == 1
    end = next(e for e in r.events if e["e"] == "utt_end")
    audio, _ = r.output_audio("loopback:rtf=3", "c0")  # the partial answer is kept
    assert end["status"] == "truncated" and 0 < audio.size == end["out_samples"] < 0.8 * 16000
    assert check_run(r) == []
    scores = score_run(r.path, metrics=["wer"], workers=1)
    assert scores["loopback:rtf=3"]["wer"]["value"] is None
    line = json.loads((r.path / "scores.jsonl").read_text().splitlines()[0])
    assert "truncated" in line["reason"]


def test_a_turn_that_never_makes_a_sound_is_no_answer_not_ok(tmp_path):
    from harness.metrics import score_run
    from harness.rescore import check_run

    # -50 dBFS noise: valid input, but loopback's echo starts at the first audible sample, so it says nothing
    quiet = Utterance(
        id="quiet",
        sample_rate=16000,
        audio_array=(0.003 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32),
    )
    r = run(tmp_path, ["loopback"], [quiet, *clips(1)], warmup=0)
    s = r.summary["loopback"]
    assert (s["n_ok"], s["n_no_answer"], s["answer_rate"]) == (1, 1, 0.5) and s["no_answer"] == ["quiet"]
    assert s["ttfa_km"]["n_censored"] == 1 and s["ttfa_ms"]["n"] == 1
    assert check_run(r) == []
    score_run(r.path, metrics=["wer"], workers=1)  # no output file for it: no "output audio unreadable"
    reasons = {
        json.loads(x)["u"]: json.loads(x)["reason"]
        for x in (r.path / "scores.jsonl").read_text().splitlines()
    }
    assert "no answer: the output was never audible" in reasons["quiet"]


def test_rescore_check_rederives_onsets_from_the_output_audio(tmp_path):
    from harness.audio import write_audio
    from harness.rescore import check_run

    r = run(tmp_path, ["loopback"], clips(2), warmup=0)
    assert check_run(r) == []
    wav = r.output_path("loopback", "c1")
    audio, sr = r.output_audio("loopback", "c1")
    write_audio(wav, np.concatenate([np.zeros(800, np.float32), audio[800:]]), sr)  # the onset moves
    problems = check_run(r)
    assert len(problems) == 1 and "first audible sample" in problems[0] and "c1" in problems[0]
    write_audio(wav, audio[:-10], sr)
    assert any("the WAV has" in p for p in check_run(r))
