"""espeak-ng synthesis through the espeakng-loader wheel and the built-in synthetic sets (tiny subsets)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("espeakng_loader", reason="espeak-ng synthesis needs the 'data' extra (espeakng-loader)")

from harness.data import load_utterances, read_manifest  # noqa: E402
from harness.datasets import espeak, festival, text  # noqa: E402
from harness.datasets.build import split_of  # noqa: E402
from harness.datasets.telugu import build_telugu_mini, build_telugu_synth  # noqa: E402

SENTENCE = "నమస్కారం, మీరు ఎలా ఉన్నారు?"
HAS_FESTIVAL, FESTIVAL_WHY = festival.festival_available()


def test_espeak_speaks_telugu_at_16k_float32():
    x = espeak.synthesize(SENTENCE, espeak.ESPEAK_VOICES[0], seed=1)
    assert x.dtype == np.float32 and x.ndim == 1
    assert 0.8 < x.size / 16000 < 6.0, "a short sentence should last about two seconds"
    assert 0.05 < np.abs(x).max() <= 1.0


def test_espeak_output_does_not_depend_on_what_was_spoken_before():
    voice = espeak.ESPEAK_VOICES[0]
    first = espeak.synthesize(SENTENCE, voice, seed=7)
    espeak.synthesize("ఈ రోజు వాతావరణం బాగుంది.", espeak.ESPEAK_VOICES[1], seed=3)
    again = espeak.synthesize(SENTENCE, voice, seed=7)
    assert np.array_equal(first, again)


def test_espeak_voices_differ():
    a = espeak.synthesize(SENTENCE, espeak.ESPEAK_VOICES[0], seed=1)
    b = espeak.synthesize(SENTENCE, espeak.ESPEAK_VOICES[1], seed=1)
    assert a.size != b.size or not np.array_equal(a, b)


def test_unknown_espeak_voice_is_named():
    with pytest.raises(ValueError, match="nosuch"):
        espeak.synthesize(SENTENCE, espeak.EspeakVoice("x", "te+nosuch"))


def _files(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "build.json"
    }


def test_telugu_mini_two_builds_are_byte_identical(tmp_path):
    opts = dict(n_espeak=2, with_festival=False, limit_sentences=6, progress=False)
    m1 = build_telugu_mini(tmp_path / "a", **opts)
    m2 = build_telugu_mini(tmp_path / "b", workers=1, **opts)
    f1, f2 = _files(m1.parent), _files(m2.parent)
    assert len(f1) == 6 * 2 + 1
    assert f1 == f2


def test_telugu_mini_manifest_fields_and_checksums(tmp_path):
    import hashlib

    manifest = build_telugu_mini(tmp_path, n_espeak=2, with_festival=False, limit_sentences=5, progress=False)
    lines = [json.loads(ln) for ln in manifest.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 10
    for rec in lines:
        for key in (
            "id",
            "audio",
            "sample_rate",
            "duration",
            "text",
            "speaker",
            "language",
            "split",
            "source",
            "license",
            "sha256",
        ):
            assert key in rec, key
        assert not rec["audio"].startswith("/"), "audio paths are relative to the manifest"
        assert hashlib.sha256((manifest.parent / rec["audio"]).read_bytes()).hexdigest() == rec["sha256"]
    utts = read_manifest(manifest)
    x = utts[0].load_audio(16000)
    assert x.dtype == np.float32 and abs(x.size / 16000 - utts[0].duration_s) < 1e-3


def test_full_text_is_split_by_sentence_with_no_sentence_in_two_splits():
    splits: dict[str, set] = {}
    for sent in text.sentences():
        splits.setdefault(split_of(sent), set()).add(sent)
    assert set(splits) == {"train", "dev", "test"}
    assert not (splits["train"] & splits["dev"]) and not (splits["train"] & splits["test"])
    assert not (splits["dev"] & splits["test"])
    assert len(splits["test"]) >= 30 and len(splits["dev"]) >= 30


def test_built_split_never_shares_a_sentence(tmp_path):
    manifest = build_telugu_mini(
        tmp_path, n_espeak=2, with_festival=False, limit_sentences=12, progress=False
    )
    by_text: dict[str, set] = {}
    for u in read_manifest(manifest):
        by_text.setdefault(u.text, set()).add(u.split)
    assert len(by_text) == 12
    assert all(len(s) == 1 for s in by_text.values())


def test_load_utterances_builds_on_demand_into_env_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("S2S_BENCH_CACHE", str(tmp_path))
    utts = load_utterances("telugu-mini-qa", n_espeak=2, with_festival=False, limit_pairs=3, progress=False)
    assert (tmp_path / "data" / "telugu-mini-qa" / "manifest.jsonl").exists()
    assert len(utts) == 6
    u = utts[0]
    assert u.text and u.response_text and u.response_audio_path
    assert u.speaker != u.extra["response_speaker"]
    assert u.load_audio(16000).size > 0
    pairs = {}
    for u in utts:
        pairs.setdefault(u.extra["pair"], set()).add(u.split)
    assert all(len(s) == 1 for s in pairs.values()), "a pair is never in two splits"


def test_telugu_synth_reaches_the_asked_hours(tmp_path):
    manifest = build_telugu_synth(tmp_path, hours=0.01, with_festival=False, progress=False)
    utts = read_manifest(manifest)
    total_h = sum(u.duration_s for u in utts) / 3600
    assert 0.01 <= total_h < 0.01 + 15 / 3600, "the set stops at the first utterance that reaches the target"
    assert {u.extra["kind"] for u in utts} == {"sentence", "words"}
    mini_test = {s for s in text.sentences() if split_of(s) != "train"}
    assert not any(u.text in mini_test for u in utts), (
        "no dev/test sentence of telugu-mini in training speech"
    )


@pytest.mark.skipif(not HAS_FESTIVAL, reason=f"festival voice not installed: {FESTIVAL_WHY}")
def test_festival_speaks_cleaned_text_without_dc():
    x = festival.synthesize("ఈ రోజు hello 123 వాతావరణం బాగుంది!")
    assert x.dtype == np.float32 and x.size / 16000 > 0.8
    assert abs(float(x.mean())) < 1e-3


@pytest.mark.skipif(not HAS_FESTIVAL, reason=f"festival voice not installed: {FESTIVAL_WHY}")
def test_festival_crash_is_reported_per_text_and_the_rest_survive():
    texts = ["ఈ రోజు వాతావరణం బాగుంది.", "ఒక కిలో బియ్యం ఎంత?", "మీ పేరు ఏమిటి?", "hello only"]
    out = festival.synthesize_many(texts)
    assert isinstance(out[0], np.ndarray) and isinstance(out[2], np.ndarray)
    assert isinstance(out[3], RuntimeError) and "no Telugu letters" in str(out[3])


def test_festival_text_cleaning():
    assert festival.clean_text("నమస్కారం! hello, 42 మీరు @ఎలా# ఉన్నారు?") == "నమస్కారం! మీరు ఎలా ఉన్నారు?"
    with pytest.raises(ValueError, match="no Telugu letters"):
        festival.clean_text("hello 123")
