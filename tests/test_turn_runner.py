"""The runner without the oracle (endpointing=system, harness.turns.driver): loopback behind the endpointer adapter
side by side with the oracle, a backend that endpoints itself, the listening limit, the microphone."""

import numpy as np
import pytest

import harness.plugins
from harness.backend import Backend, Option, OutputChunk, Session
from harness.datasets import synthetic_clips
from harness.hookspecs import hookimpl
from harness.rescore import check_run
from harness.results import load_run
from harness.runner import RunError, run_benchmark
from harness.turns.driver import Microphone
from harness.turns.endpointer import EndpointerSettings
from harness.turns.scenarios import build_scenarios

HANGOVER_MS = 400.0
ENERGY = EndpointerSettings(vad="energy", hangover_ms=HANGOVER_MS)


def short_questions():
    """The scenarios of one synthetic question (2.55 s, its spliced pause 1.03 s), a 1.09 s one interrupting."""
    clips = {u.id: u for u in synthetic_clips(10)}
    return build_scenarios([clips["synth-0000"], clips["synth-0004"]])[:4]


def measure(tmp_path, name, mode, backends=("loopback:delay_ms=100",), utts=None, **kw):
    kw.setdefault("concurrency", 4)
    kw.setdefault("timeout_s", 8.0)
    return load_run(
        run_benchmark(
            list(backends),
            utterances=utts if utts is not None else short_questions(),
            out=tmp_path / name,
            endpointing=mode,
            endpointer=ENERGY,
            warmup=0,
            progress=False,
            **kw,
        )
    )


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("turns")
    return {mode: measure(tmp, mode, mode) for mode in ("oracle", "system")}


def rows(run):
    from harness.latency import utterance_latencies

    return {r.utt: r for r in utterance_latencies(run.events)}


def test_without_the_oracle_the_answer_waits_for_the_endpointer(side_by_side):
    oracle, system = rows(side_by_side["oracle"]), rows(side_by_side["system"])
    smooth = "synth-0000.smooth"
    assert oracle[smooth].ttfa_ms == pytest.approx(100, abs=60)  # delay_ms: the clip has no trailing silence
    # the adapter needs HANGOVER_MS of silence, decided on 32 ms windows, before loopback's 100 ms delay starts
    assert system[smooth].ttfa_ms >= oracle[smooth].ttfa_ms + HANGOVER_MS - 40
    assert system[smooth].marks["endpoint"] >= HANGOVER_MS - 40
    meta = side_by_side["system"].meta
    assert meta["settings"]["endpointing"] == "system" and meta["endpointer"]["hangover_ms"] == HANGOVER_MS
    assert meta["backends"][0]["endpointing"] == "endpointer adapter"
    assert "endpointer" not in side_by_side["oracle"].meta


def test_a_pause_longer_than_the_hangover_ends_the_turn_early_only_without_the_oracle(side_by_side):
    oracle = side_by_side["oracle"].summary["loopback:delay_ms=100"]["turns"]["scenarios"]["pause"]
    system = side_by_side["system"].summary["loopback:delay_ms=100"]["turns"]["scenarios"]["pause"]
    assert oracle["spoke_in_pause_rate"]["value"] == 0.0  # the oracle waits for the real end
    assert system["spoke_in_pause_rate"]["value"] == 1.0  # the 1.03 s pause > 400 ms hangover
    assert system["endpoint_ms"]["p50"] < 0  # the endpointer decided before the user had finished


def test_barge_in_stops_loopback_and_it_answers_the_new_question(side_by_side):
    scenarios = side_by_side["system"].summary["loopback:delay_ms=100"]["turns"]["scenarios"]
    interrupt = scenarios["interrupt"]
    assert (
        interrupt["yielded_rate"]["value"] == 1.0 and interrupt["answers_interruption_rate"]["value"] == 1.0
    )
    # it yields once the user's speech has lasted min_speech_ms (250 ms) on 32 ms windows (the first of which may
    # hold up to 32 ms before the speech), plus the time until the runner polls the mark
    assert 250 - 32 <= interrupt["time_to_yield_ms"]["p50"] <= 250 + 32 + 200
    assert scenarios["backchannel"]["false_stop_rate"]["n"] == 1  # an energy VAD hears ఊ as a turn
    oracle = side_by_side["oracle"].summary["loopback:delay_ms=100"]["turns"]["scenarios"]["interrupt"]
    assert "not_counted" in oracle and oracle.get("yielded_rate", {}).get("n", 0) == 0


def test_both_runs_rescore_and_their_folders_agree(side_by_side):
    for run in side_by_side.values():
        assert check_run(run) == []


class SelfTimed(Backend):
    """Answers ``answer_s`` of tone once it has heard ``wait_ms`` of silence after sound; never with ``never``;
    with ``many`` it answers every such turn and never ends by itself."""

    name = "selftimed-test"
    endpoints_itself = True
    options = {
        "wait_ms": Option(float, 300.0),
        "never": Option(bool, False),
        "answer_s": Option(float, 0.3),
        "many": Option(bool, False),
    }
    ended_inputs = 0

    def open_session(self) -> Session:
        return _SelfTimedSession(self)


class _SelfTimedSession(Session):
    def __init__(self, backend):
        self.b, self.heard, self.quiet, self.out, self.sent = backend, False, 0, [], False

    def push(self, pcm):
        o = self.b.opts
        if np.sqrt(np.mean(pcm**2)) > 0.01:
            self.heard, self.quiet = True, 0
        elif self.heard:
            self.quiet += pcm.size
            if self.quiet >= o["wait_ms"] * 16 and not o["never"] and (o["many"] or not self.sent):
                self.out.append((0.2 * np.ones(int(o["answer_s"] * 16000))).astype(np.float32))
                self.heard = False

    def end_input(self):
        SelfTimed.ended_inputs += 1

    def poll(self, timeout=0.0):
        if self.out:
            self.sent = True
            return OutputChunk(audio=self.out.pop(0))
        import time

        time.sleep(timeout)
        return None

    @property
    def done(self):
        return self.sent and not self.b.opts["many"] and not self.out


@hookimpl
def register_backends(register):
    register(SelfTimed)


@pytest.fixture
def selftimed():
    harness.plugins.load_plugins()
    harness.plugins.pm.register(__import__(__name__), "selftimed-test")
    yield
    harness.plugins.pm.unregister(name="selftimed-test")


def test_a_backend_that_endpoints_itself_is_not_wrapped_and_never_told(tmp_path, selftimed):
    SelfTimed.ended_inputs = 0
    run = measure(tmp_path, "self", "system", ["selftimed-test"], utts=list(synthetic_clips(10))[4:5])
    assert SelfTimed.ended_inputs == 0
    assert run.meta["backends"][0]["endpointing"] == "itself"
    ttfa = [r.ttfa_ms for r in rows(run).values()]
    assert all(t >= 300 - 20 for t in ttfa)  # its own wait is in TTFA: no oracle to hide it
    assert not [e for e in run.events if e.get("e") == "mark"]


def test_no_answer_by_the_listening_limit_is_no_answer_not_a_failure(tmp_path, selftimed):
    never = ["selftimed-test:never=true"]
    run = measure(tmp_path, "never", "system", never, utts=list(synthetic_clips(10))[9:10], timeout_s=1.0)
    summary = run.summary["selftimed-test:never=true"]
    assert summary["n_no_answer"] == 1 and summary["n_failed"] == 0
    assert summary["turns"]["scenarios"]["smooth"]["takeover_rate"]["value"] == 0.0


def test_listening_goes_on_after_injected_speech_until_a_self_endpointing_system_has_answered(
    tmp_path, selftimed
):
    """The settle time counts from the end of the user's injected speech, not from the last output."""
    key = "selftimed-test:many=true,answer_s=1.2"
    run = measure(
        tmp_path, "many", "system", [key], utts=[u for u in short_questions() if "interrupt" in u.id]
    )
    (r,) = run.summary[key]["turns"]["scenarios"].values()
    assert r["yielded_rate"]["value"] == 1.0  # its 1.2 s answer, sent at once, ends while the user speaks
    assert r["answers_interruption_rate"]["value"] == 1.0  # and it answers the new question 300 ms after it


def test_endpointing_system_needs_realtime_pacing(tmp_path):
    with pytest.raises(RunError, match="realtime"):
        run_benchmark(
            ["loopback"], "synthetic-clips", out=tmp_path / "r", pacing="fast", endpointing="system"
        )


def test_the_microphone_plays_the_file_then_the_tail_with_injected_speech_mixed_in():
    audio = np.full(1000, 0.5, np.float32)
    mic = Microphone(audio, 16000, "noise", -55.0, seed=3)
    mic.add(1500, np.full(100, 0.25, np.float32))
    x = np.concatenate([mic.read(i, 200) for i in range(0, 32000, 200)])
    assert np.array_equal(x[:1000], audio)
    tail = x[1000:]
    assert 20 * np.log10(np.sqrt(np.mean(np.square(np.delete(tail, range(500, 600)))))) == pytest.approx(
        -55, abs=1
    )
    assert np.mean(x[1500:1600]) == pytest.approx(0.25, abs=0.01)
    again = Microphone(audio, 16000, "noise", -55.0, seed=3)
    assert np.array_equal(again.read(20000, 777), x[20000:20777])  # the same bed, read in any pieces
    quiet = Microphone(audio, 16000, "silence", -55.0, seed=3)
    assert not np.any(quiet.read(1000, 5000))


def test_the_trigger_follows_what_the_user_hears_not_what_was_dropped():
    from harness.backend import OutputChunk
    from harness.turns.driver import Heard

    ns = 10**9
    heard = Heard(16000)
    heard.add(OutputChunk(audio=np.zeros(16000, np.float32)), 1 * ns)  # 1 s of silence, played 1-2 s
    heard.add(OutputChunk(audio=np.full(8000, 0.2, np.float32)), int(1.2 * ns))  # queued behind it
    assert heard.onset_ns == 2 * ns  # it would be heard at 2 s ...
    heard.add(OutputChunk(marks=("barge_in",)), int(1.5 * ns))  # ... but is dropped before
    assert heard.onset_ns is None and heard.played_end_ns == 1.5 * ns
    heard.add(OutputChunk(audio=np.full(8000, 0.2, np.float32)), 3 * ns)
    assert heard.onset_ns == 3 * ns and heard.played_end_ns == 3.5 * ns
