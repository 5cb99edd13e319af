"""Full-Duplex-Bench's definitions (harness.turns.fdb) on planted timelines, against values worked out by hand from
their scripts (v1 eval_pause_handling / eval_smooth_turn_taking / eval_user_interruption, v1.5 get_timing) and from
the example data shipped in their repository (v1_v1.5/evaluation/example_data)."""

import pytest

from harness.turns import fdb

# Their smooth_turn_taking_example/1: turn_taking.json says the user's turn ends at 2.01 s; output.json's words
# (a prefix; the answer runs on for seconds) start with "Yes," at 3.36 s.
SMOOTH_EXAMPLE_WORDS = [(3.36, 3.9), (4.46, 4.69), (4.69, 4.84), (4.84, 5.04), (5.04, 5.35), (5.35, 5.65)]
SMOOTH_EXAMPLE_USER_END = 2.0100000000000016
# Their user_interruption_example/1: interrupt.json [10.53, 13.144]; the first output word after it at 17.224 s.
INTERRUPT_EXAMPLE_WORDS = [(17.224, 17.704), (17.904, 18.104), (18.104, 18.364), (18.364, 18.474)]
INTERRUPT_EXAMPLE_END = 13.144


def test_no_words_is_no_turn():
    assert fdb.take_turn([]) == 0
    assert fdb.response_latency_s([], 1.0) is None


def test_short_output_of_few_words_is_not_a_turn_but_of_many_words_is():
    assert fdb.take_turn([(0.0, 0.3), (0.3, 0.6)]) == 0  # 0.6 s, 2 words
    assert fdb.take_turn([(0.0, 0.2), (0.2, 0.4), (0.4, 0.9)]) == 0  # 0.9 s, 3 words: still not
    assert fdb.take_turn([(0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.9)]) == 1  # 4 words
    assert fdb.take_turn([(2.0, 3.0)]) == 1  # exactly 1 s: `duration < 1` is false
    assert fdb.take_turn([(2.0, 2.99)]) == 0


def test_a_last_word_without_an_end_counts_from_its_start():
    # eval_pause_handling.py: duration = last start - first start when the last end is None
    assert fdb.take_turn([(0.0, 0.5), (0.9, None)]) == 0
    assert fdb.take_turn([(0.0, 0.5), (1.2, None)]) == 1


def test_their_smooth_turn_taking_example():
    assert fdb.take_turn(SMOOTH_EXAMPLE_WORDS) == 1
    assert fdb.response_latency_s(SMOOTH_EXAMPLE_WORDS, SMOOTH_EXAMPLE_USER_END) == pytest.approx(1.35)


def test_their_user_interruption_example():
    # eval_user_interruption.py: latency from the end of the interruption to the first word of the cropped output
    assert fdb.take_turn(INTERRUPT_EXAMPLE_WORDS) == 1
    assert fdb.response_latency_s(INTERRUPT_EXAMPLE_WORDS, INTERRUPT_EXAMPLE_END) == pytest.approx(4.08)


def test_an_answer_before_the_end_counts_as_zero_latency_and_averages_are_plain_means():
    words = [(1.5, 2.0), (2.0, 3.0)]
    assert fdb.response_latency_s(words, 2.5) == 0.0
    assert fdb.mean([0.0, 1.35, None, 0.25]) == pytest.approx(1.6 / 3)
    assert fdb.mean([None]) is None


def test_v15_merge_overlaps_and_response_gaps_on_a_planted_timeline():
    user = fdb.merge([(1.5, 2.0), (0.0, 1.0), (5.0, 6.0)], fdb.USER_MERGE_GAP_S)
    system = fdb.merge([(1.8, 3.0), (3.4, 4.0), (5.5, 7.0)], fdb.SYSTEM_MERGE_GAP_S)
    assert user == [(0.0, 2.0), (5.0, 6.0)]  # 0.5 s apart <= 0.6: joined
    assert system == [(1.8, 4.0), (5.5, 7.0)]  # 0.4 s apart <= 0.5: joined
    assert fdb.overlaps(user, system) == [[1.8, 2.0], [5.5, 6.0]]
    assert fdb.response_gaps(user, system) == [[2.0, 5.5]]  # the second user segment has no later start


def test_v15_gaps_equal_to_the_merge_gap_are_joined():
    assert fdb.merge([(0.0, 1.0), (1.5, 2.0)], 0.5) == [(0.0, 2.0)]
    assert fdb.merge([(0.0, 1.0), (1.51, 2.0)], 0.5) == [(0.0, 1.0), (1.51, 2.0)]


def test_v15_keeps_the_shortest_overlap_per_end_and_the_latest_user_end_per_response():
    assert fdb.overlaps([(0.0, 3.0)], [(1.0, 2.5), (2.0, 2.5)]) == [[2.0, 2.5]]
    assert fdb.response_gaps([(0.0, 1.0), (1.2, 2.0)], [(3.0, 4.0)]) == [[2.0, 3.0]]
    assert fdb.overlaps([(0.0, 1.23456)], [(0.5, 2.0)]) == [[0.5, 1.235]]  # rounded to 1 ms like theirs
