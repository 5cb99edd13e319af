"""Telugu-safe text scoring: normalisation, grapheme clusters, WER/CER/chrF and the `score text` command."""

import json
import unicodedata

import pytest

from harness.cli import main
from harness.metrics import Sample, aggregate, get_metrics
from harness.metrics.text import char_errors, chrf, graphemes, normalize_telugu, word_errors


def test_telugu_words_keep_their_vowel_signs_and_stay_two_words():
    text = "తెలుగు భాష"
    assert normalize_telugu(text) == unicodedata.normalize("NFC", text)
    assert normalize_telugu(text).split() == ["తెలుగు", "భాష"]
    # every vowel sign (category Mn/Mc) survives
    marks = [c for c in text if unicodedata.category(c).startswith("M")]
    assert marks and all(m in normalize_telugu(text) for m in marks)


def test_normaliser_drops_punctuation_and_zero_width_maps_digits_and_lowercases_latin():
    raw = "నమస్కారం, Hello!  \u0c67\u0c68\u0c69 రూ\u200cపాయలు। \u201cAI\u201d"
    assert normalize_telugu(raw) == "నమస్కారం hello 123 రూపాయలు ai"
    # virama, anusvara and visarga are marks: kept
    assert normalize_telugu("క్ష దుఃఖం") == "క్ష దుఃఖం"


def test_kaalam_vs_kalam_is_one_substitution_over_grapheme_clusters():
    c = char_errors("కాలం", "కలం")
    assert (c.substitutions, c.deletions, c.insertions, c.ref_len) == (1, 0, 0, 2)
    # over code points the missing vowel sign is a deletion of one of four code points
    cp = char_errors("కాలం", "కలం", unit="codepoint")
    assert (cp.substitutions, cp.deletions, cp.insertions, cp.ref_len) == (0, 1, 0, 4)


def test_conjunct_cluster_is_one_character():
    assert graphemes("ళ్తా") == ["ళ్తా"]
    assert graphemes("స్త్రీ") == ["స్త్రీ"]
    c = char_errors("ళ్తా", "ళ్తి")
    assert (c.substitutions, c.ref_len) == (1, 1)


def test_word_counts():
    c = word_errors("నేను ఇంటికి వెళ్తాను", "నేను ఇంటికీ వెళ్తాను ఇప్పుడు")
    assert (c.substitutions, c.deletions, c.insertions, c.hits) == (1, 0, 1, 2)
    assert c.rate == pytest.approx(2 / 3)
    d = word_errors("నేను ఇంటికి వెళ్తాను", "వెళ్తాను")
    assert (d.deletions, d.rate) == (2, pytest.approx(2 / 3))


def test_corpus_wer_is_total_errors_over_total_words_not_mean_of_ratios():
    wer = get_metrics("wer")[0]
    samples = [
        Sample("a", ref_text="భాష", transcript="బాష"),  # 1 error / 1 word
        Sample(
            "b",
            ref_text="ఒకటి రెండు మూడు నాలుగు ఐదు ఆరు ఏడు ఎనిమిది తొమ్మిది",
            transcript="ఒకటి రెండు మూడు నాలుగు ఐదు ఆరు ఏడు ఎనిమిది తొమ్మిది",
        ),
    ]
    agg = aggregate(wer, [wer.compute(s) for s in samples])
    assert agg["value"] == pytest.approx(0.1)  # a mean of ratios would say 0.5
    assert agg["n"] == 2 and agg["higher_is_better"] is False and len(agg["ci95"]) == 2


def test_chrf_bounds():
    assert chrf("తెలుగు భాష", "తెలుగు భాష") == pytest.approx(100.0)
    assert chrf("తెలుగు భాష", "") == 0.0
    assert 0 < chrf("తెలుగు భాష", "తెలుగు బాష") < 100


def test_text_metrics_without_judge_or_reference_are_na_with_reason():
    wer, cer = get_metrics("wer,cer")
    r = wer.compute(Sample("x", audio=None, ref_text="భాష"))
    assert r.value is None and "no ASR judge" in r.reason and "--asr-judge" in r.reason
    r = cer.compute(Sample("x", ref_text=None, transcript="భాష"))
    assert r.value is None and "no reference text" in r.reason


def test_score_text_command_matches_hand_counts(tmp_path, capsys):
    ref = tmp_path / "ref.txt"
    hyp = tmp_path / "hyp.txt"
    ref.write_text("తెలుగు భాష చాలా బాగుంది.\nకాలం మారింది\n", encoding="utf-8")
    hyp.write_text("తెలుగు బాష చాలా బాగుంది\nకలం మారింది\n", encoding="utf-8")
    assert main(["score", "text", "--ref", str(ref), "--hyp", str(hyp), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # By hand: words 4 + 2 = 6, two substitutions (భాష->బాష, కాలం->కలం).
    assert out["corpus"]["wer"]["value"] == pytest.approx(2 / 6)
    # Clusters incl. the spaces: line 1 = 13 (తె లు గు _ భా ష _ చా లా _ బా గుం ది), line 2 = 6 (కా లం _ మా రిం ది).
    assert out["corpus"]["cer"]["value"] == pytest.approx(2 / 19)
    assert out["grapheme_counts"] == {"sub": 2, "del": 0, "ins": 0, "ref_len": 19}
    # Code points: line 1 = 23, line 2 = 12; భ->బ is a substitution, the missing ా a deletion.
    assert out["corpus"]["cer_codepoint"]["value"] == pytest.approx(2 / 35)


def test_score_text_command_rejects_mismatched_line_counts(tmp_path, capsys):
    (tmp_path / "r.txt").write_text("ఒకటి\nరెండు\n", encoding="utf-8")
    (tmp_path / "h.txt").write_text("ఒకటి\n", encoding="utf-8")
    assert main(["score", "text", "--ref", str(tmp_path / "r.txt"), "--hyp", str(tmp_path / "h.txt")]) == 2
    assert "2 lines" in capsys.readouterr().err


def _levenshtein(ref: list[str], hyp: list[str]) -> int:
    """A plain dynamic-programming edit distance: the reference the jiwer-based counts are checked against."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j - 1] + (r != h), prev[j] + 1, cur[j - 1] + 1))
        prev = cur
    return prev[-1]


def test_jiwer_alignment_over_grapheme_tokens_equals_a_plain_edit_distance():
    import random

    from harness.metrics.text import edit_counts

    rng = random.Random(0)
    alphabet = graphemes("తెలుగు భాష చాలా బాగుంది ళ్తా స్త్రీ") + ["t0", "t1 t2"]  # incl. spaces, clashing names
    for _ in range(300):
        ref = rng.choices(alphabet, k=rng.randint(0, 12))
        hyp = rng.choices(alphabet, k=rng.randint(0, 12))
        c = edit_counts(ref, hyp)
        assert c.errors == _levenshtein(ref, hyp), (ref, hyp)
        assert c.hits + c.substitutions + c.deletions == len(ref) and c.ref_len == len(ref)
        assert c.hits + c.substitutions + c.insertions == len(hyp)
