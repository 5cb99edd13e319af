"""Turn-taking scenarios (harness.turns.scenarios): built from any set, splice points known, reproducible."""

import numpy as np
import pytest

from harness.data import Utterance, load_utterances
from harness.turns.scenarios import (
    BACKCHANNEL_VOICES,
    PAUSE_RANGE_S,
    SCENARIOS,
    build_scenarios,
    pause_cut_s,
    pause_length_s,
)

SR = 16000


def question(uid, speaker, text, seconds=1.2, seed=0):
    """Two 'words' of noise with a quiet 60 ms gap at 55% of the speech."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int((seconds + 0.2) * SR), np.float32)
    speech = (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32)
    gap = int(0.55 * speech.size)
    speech[gap : gap + int(0.06 * SR)] *= 0.001
    x[int(0.1 * SR) : int(0.1 * SR) + speech.size] = speech
    return Utterance(id=uid, sample_rate=SR, speaker=speaker, text=text, audio_array=x, split="test")


@pytest.fixture
def base():
    return [
        question("a", "espeak-te-m1", "one", seed=1),
        question("b", "espeak-te-f5", "two", seed=2),
        question("c", "espeak-te-m1", "three", seed=3),
    ]


def test_four_scenarios_per_question_grouped_by_question(base):
    utts = build_scenarios(base)
    assert [u.id for u in utts[:4]] == [f"a.{s}" for s in SCENARIOS]
    assert len(utts) == 12 and all(u.split == "test" for u in utts)
    assert len({u.sha256 for u in utts}) == 12


def test_the_pause_goes_into_the_quiet_gap_and_everything_else_is_the_question(base):
    pause = build_scenarios(base, ["pause"])[0]
    original = base[0].load_audio(SR)
    x = pause.load_audio(SR)
    plan, injections = pause.turn_plan(SR)
    start, end = plan["pause_s"]
    assert PAUSE_RANGE_S[0] <= end - start <= PAUSE_RANGE_S[1] and end - start == pytest.approx(
        pause_length_s("a")
    )
    gap_at = (0.1 + 0.55 * 1.2) * SR
    assert gap_at <= start * SR <= gap_at + 0.06 * SR  # the quietest 10 ms of the middle
    cut = int(round(start * SR))
    assert np.array_equal(x[:cut], original[:cut]) and np.array_equal(
        x[int(round(end * SR)) :], original[cut:]
    )
    assert not np.any(x[cut : int(round(end * SR))]) and injections == []


def test_pauses_are_seeded_by_the_question():
    lengths = {pause_length_s(f"q{i}") for i in range(200)}
    assert min(lengths) >= 0.4 and max(lengths) <= 1.5 and len(lengths) > 50
    assert pause_length_s("q7") == pause_length_s("q7")
    assert pause_cut_s(np.zeros(SR, np.float32), SR) == 0.5  # nothing audible: the middle


def test_the_interruption_is_the_next_question_of_the_same_speaker_trimmed_to_its_speech(base):
    interrupt = build_scenarios(base, ["interrupt"])[0]
    plan, (inj,) = interrupt.turn_plan(SR)
    assert inj.label == "c" and inj.what == "interrupt"  # c has a's speaker; b does not
    assert inj.audio.size == pytest.approx((1.2 + 0.1) * SR, abs=0.02 * SR)  # speech + 50 ms each side
    assert inj.speech_s[0] == pytest.approx(0.05, abs=0.002)
    assert plan["inject"][0]["label"] == "c"


def test_backchannels_are_short_telugu_acknowledgements_in_another_voice(base):
    utts = build_scenarios(base, ["backchannel"])
    texts, voices = zip(*(u.backchannel for u in utts), strict=True)
    assert texts == ("ఊ", "అవును", "సరే")
    assert voices == (BACKCHANNEL_VOICES[0], BACKCHANNEL_VOICES[1], BACKCHANNEL_VOICES[0])  # b is te+f5
    _, (inj,) = utts[1].turn_plan(SR)
    assert 0.2 < inj.speech_s[1] - inj.speech_s[0] < 1.0
    again = build_scenarios(base, ["backchannel"])[1].turn_plan(SR)[1][0]
    assert np.array_equal(inj.audio, again.audio)


def test_an_annotated_speech_end_moves_with_the_pause():
    x = question("a", "s", "t").audio_array
    u = Utterance(id="a", sample_rate=SR, audio_array=x, extra={"speech_end_s": 1.3})
    pause = build_scenarios([u], ["pause"])[0]
    pause.load_audio(SR)
    assert pause.extra["speech_end_s"] == pytest.approx(1.3 + pause_length_s("a"))


def test_turn_taking_data_is_built_from_any_set_by_name():
    utts = load_utterances("turn-taking:synthetic-clips", limit=8)
    assert [u.id for u in utts[:2]] == ["synth-0000.smooth", "synth-0000.pause"]
    with pytest.raises(ValueError, match="scenarios among"):
        build_scenarios([], ["barge"])
