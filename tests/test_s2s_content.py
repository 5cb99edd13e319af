"""The content metric: DTW over log-mels and rank-1 accuracy against the reference answers."""

from __future__ import annotations

import numpy as np
from s2s_fixtures import toy_wave

from custom_model.s2s.content import dtw_distances, log_mel, rank_accuracy


def test_log_mel_has_one_frame_per_20_ms():
    mel = log_mel(toy_wave(1.0, 300, 0))
    assert mel.shape == (1 + (16000 - 512) // 320, 40)
    assert np.isfinite(mel).all()


def test_dtw_finds_a_time_stretched_copy_nearer_than_another_sound():
    a = log_mel(toy_wave(0.6, 300, 0))
    stretched = np.repeat(a, 3, axis=0)[::2]  # 1.5 x longer, same content
    other = log_mel(toy_wave(0.6, 900, 1))
    d = dtw_distances(a, [other, stretched, a])
    assert d[2] == 0.0
    assert d[1] < d[0]
    too_long = np.repeat(a, 3, axis=0)  # beyond the slope limit of 2
    assert np.isinf(dtw_distances(a, [too_long])[0])


def test_rank_accuracy_counts_the_same_text_by_another_voice_as_right():
    refs = [log_mel(toy_wave(0.5, f, i)) for i, f in enumerate([200, 400, 800, 1600])]
    texts = ["a", "b", "c", "a"]
    generated = [refs[3], refs[1], refs[0], np.zeros((0, 40), np.float32)]  # 'a' spoken as the other 'a'
    accuracy, chance, hits = rank_accuracy(generated, refs, texts, ["a", "b", "b", "c"])
    assert hits == [True, True, False, False]  # an empty answer is never right
    assert accuracy == 0.5
    assert chance == (2 / 4 + 1 / 4 + 1 / 4 + 1 / 4) / 4


def test_cmvn_makes_a_louder_copy_of_the_same_sound_the_nearest():
    from custom_model.s2s.content import cmvn

    a, b = toy_wave(0.6, 300, 0), toy_wave(0.6, 900, 1)
    loud = log_mel(a * 3.0)  # the same sound, 10 dB louder: another level, another "voice"
    raw = dtw_distances(loud, [log_mel(b), log_mel(a)])
    normalised = dtw_distances(cmvn(loud), [cmvn(log_mel(b)), cmvn(log_mel(a))])
    assert int(np.argmin(normalised)) == 1 and normalised[1] < 0.1 * normalised[0]
    assert raw[1] > 10 * normalised[1]  # without it the level difference dominates the distance
    assert cmvn(np.zeros((1, 40), np.float32)).shape == (1, 40)
