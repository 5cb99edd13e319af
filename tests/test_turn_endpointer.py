"""The endpointer adapter (harness.turns.endpointer): turns from a streaming VAD with a hangover, barge-in, and
the backend sessions it opens and ends; planted signals, so every decision point is known."""

import numpy as np
import pytest

from harness.backend import OutputChunk, Session
from harness.turns.endpointer import EndpointedSession, EndpointerSettings, StreamingVAD, TurnDetector
from harness.vad import silero_available

SR = 16000


def tone(seconds, level=0.1):
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def silence(seconds):
    return np.zeros(int(seconds * SR), np.float32)


def feed(detector, *parts, chunk=320):
    x = np.concatenate(parts)
    events = []
    for i in range(0, x.size, chunk):
        events += detector.feed(x[i : i + chunk])
    return events


def test_a_turn_ends_a_hangover_after_the_speech_and_a_shorter_pause_does_not_end_it():
    detector = TurnDetector(EndpointerSettings(vad="energy", hangover_ms=500, min_speech_ms=250))
    events = feed(detector, silence(0.32), tone(1.024), silence(0.32), tone(0.512), silence(1.0))
    assert [kind for kind, _ in events] == ["start", "end"]  # the 320 ms pause stays inside the turn
    start, end = events[0][1], events[1][1]
    assert start == int(0.32 * SR)
    assert end == int((0.32 + 1.024 + 0.32 + 0.512) * SR)


def test_a_pause_longer_than_the_hangover_ends_the_turn_and_short_sounds_start_none():
    detector = TurnDetector(EndpointerSettings(vad="energy", hangover_ms=500, min_speech_ms=250))
    events = feed(detector, tone(0.64), silence(0.8), tone(0.128), silence(0.8))
    assert [kind for kind, _ in events] == ["start", "end"]  # the 128 ms click is not a turn


class FakeTurn(Session):
    """A backend turn that answers with one second of tone once its input has ended."""

    def __init__(self, log):
        self.log, self.pushed, self.ended, self.closed, self.sent = log, 0, False, False, False
        log.append(self)

    def push(self, pcm):
        self.pushed += pcm.size

    def end_input(self):
        self.ended = True

    def poll(self, timeout=0.0):
        if self.ended and not self.sent:
            self.sent = True
            return OutputChunk(audio=tone(1.0))
        return None

    @property
    def done(self):
        return self.sent

    def close(self):
        self.closed = True


def push_all(session, *parts, chunk=320):
    x = np.concatenate(parts)
    marks = []
    for i in range(0, x.size, chunk):
        session.push(x[i : i + chunk])
        while (out := session.poll(0.0)) is not None:
            marks += list(out.marks)
    return marks


def test_the_adapter_ends_the_backend_turn_itself_and_opens_a_new_one_on_barge_in():
    turns = []
    session = EndpointedSession(lambda: FakeTurn(turns), EndpointerSettings(vad="energy"), SR)
    marks = push_all(session, tone(1.0), silence(0.7))
    assert marks == ["endpoint"] and turns[0].ended and session.answered and session.idle
    marks = push_all(session, tone(0.6), silence(0.1))
    assert marks == ["barge_in"] and len(turns) == 2 and turns[0].closed and not turns[1].ended
    # the new turn got the speech from its start (minus the preroll it could not have) and what followed
    assert turns[1].pushed >= int(0.6 * SR) and not session.idle
    assert push_all(session, silence(0.7)) == ["endpoint"] and turns[1].ended


def test_without_barge_in_speech_during_an_unfinished_answer_is_ignored():
    turns = []

    class SlowTurn(FakeTurn):
        def poll(self, timeout=0.0):
            return None  # never finishes its answer

        @property
        def done(self):
            return False

    session = EndpointedSession(lambda: SlowTurn(turns), EndpointerSettings(vad="energy", barge_in=False), SR)
    assert push_all(session, tone(1.0), silence(0.7), tone(0.6), silence(0.7)) == ["endpoint"]
    assert len(turns) == 1


def test_the_adapter_resamples_for_its_vad():
    turns = []
    session = EndpointedSession(lambda: FakeTurn(turns), EndpointerSettings(vad="energy"), 24000)
    t = np.arange(24000) / 24000
    speech = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    assert push_all(session, speech, np.zeros(int(0.7 * 24000), np.float32), chunk=480) == ["endpoint"]


@pytest.mark.skipif(not silero_available(), reason="silero-vad not installed")
def test_streaming_silero_hears_telugu_speech_and_not_silence():
    from harness.datasets import espeak

    voice = espeak.ESPEAK_VOICES[0]
    speech = espeak.synthesize("మీరు ఎలా ఉన్నారు", voice, seed=1)
    vad = StreamingVAD("silero")
    probs = [p for _, p in vad.feed(np.concatenate([silence(0.5), speech, silence(0.5)]))]
    n_silent = int(0.5 * SR) // 512
    assert max(probs[: n_silent - 1]) < 0.5 and max(probs) > 0.9


def test_settings_are_validated_and_described():
    with pytest.raises(ValueError, match="hangover_ms"):
        EndpointerSettings(hangover_ms=-1).validate()
    with pytest.raises(ValueError, match="vad"):
        EndpointerSettings(vad="webrtc").validate()
    info = EndpointerSettings(vad="energy", hangover_ms=700).describe()
    assert info["method"] == "energy" and info["hangover_ms"] == 700 and info["window_ms"] == 32.0
