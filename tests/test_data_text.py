"""The project's Telugu text: counts, character set, no duplicates, numbers written as words."""

from __future__ import annotations

import re

from harness.datasets import text

TELUGU_OR_ALLOWED = re.compile(r"^[\u0C00-\u0C7F .,?!]+$")
CODE_SWITCHED = re.compile(r"^[\u0C00-\u0C7FA-Za-z .,?!]+$")


def test_at_least_300_sentences_in_telugu_script_only():
    sents = text.sentences()
    assert len(sents) >= 300
    bad = [s for s in sents if not TELUGU_OR_ALLOWED.match(s)]
    assert not bad, f"characters outside Telugu script and . , ? ! in: {bad[:3]}"
    assert all(s[-1] in ".?!" for s in sents), "every sentence ends with . ? or !"


def test_no_duplicate_sentences_or_pairs():
    sents = text.sentences()
    assert len(set(sents)) == len(sents)
    questions = [q for q, _ in text.qa_pairs()]
    assert len(set(questions)) == len(questions)
    cs = text.code_switched()
    assert len(set(cs)) == len(cs)


def test_at_least_150_question_answer_pairs():
    pairs = text.qa_pairs()
    assert len(pairs) >= 150
    for q, a in pairs:
        assert TELUGU_OR_ALLOWED.match(q) and TELUGU_OR_ALLOWED.match(a), (q, a)
        assert q.endswith("?"), f"question should end with '?': {q!r}"
        assert q != a


def test_numbers_are_written_as_words():
    everything = list(text.sentences()) + [t for p in text.qa_pairs() for t in p] + list(text.code_switched())
    assert not [t for t in everything if re.search(r"[0-9\u0C66-\u0C6F]", t)]


def test_topics_cover_the_everyday_domains():
    topics = set(text.sentence_topics().values())
    for want in (
        "greetings",
        "numbers",
        "dates",
        "times",
        "money",
        "places",
        "names",
        "weather",
        "travel",
        "food",
        "health",
        "phone calls",
    ):
        assert want in topics


def test_code_switched_sentences_mix_both_scripts():
    cs = text.code_switched()
    assert len(cs) >= 30
    for s in cs:
        assert CODE_SWITCHED.match(s), s
        assert re.search(r"[A-Za-z]", s) and re.search(r"[\u0C00-\u0C7F]", s), s


def test_hunspell_word_list_is_optional(tmp_path):
    dic = tmp_path / "te.dic"
    dic.write_text("3\nఅక్కడ/12\nabc\nకలియబడు\n", encoding="utf-8")
    assert text.hunspell_words(str(dic)) == ("అక్కడ", "కలియబడు")
    assert text.hunspell_words(str(tmp_path / "missing.dic")) == ()
    assert len(text.sentence_words()) > 500
