"""The Whisper ASR judge, tested with a tiny random Whisper (random weights: its transcripts are gibberish)
built here and saved offline, then loaded back through the judge's own loading code."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from harness.metrics import get_metrics, score_run
from harness.metrics.judges import JudgeError, WhisperJudge, create_judge
from harness.metrics.text import word_errors

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


def build_tiny_random_whisper(path):
    """A 1-layer, d_model=16 Whisper with random weights and a byte-level tokenizer written from scratch
    (256 byte symbols, no merges, Whisper's special tokens), saved with save_pretrained: no download."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    vocab = {c: i for i, c in enumerate(sorted(ByteLevel.alphabet()))}
    specials = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *[f"<|{code}|>" for code in LANGUAGES],
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
    ]
    for tok in specials:
        vocab[tok] = len(vocab)
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    eot, sot = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
    config = WhisperConfig(
        vocab_size=len(vocab),
        num_mel_bins=80,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_target_positions=64,
        decoder_start_token_id=sot,
        eos_token_id=eot,
        pad_token_id=eot,
        bos_token_id=eot,
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    gen = model.generation_config
    gen._from_model_config = (
        False  # otherwise from_pretrained rebuilds it from config.json, losing lang_to_id
    )
    gen.is_multilingual = True
    gen.lang_to_id = {f"<|{code}|>": vocab[f"<|{code}|>"] for code in LANGUAGES}
    gen.task_to_id = {"transcribe": vocab["<|transcribe|>"], "translate": vocab["<|translate|>"]}
    gen.no_timestamps_token_id = vocab["<|notimestamps|>"]
    gen.max_length = 64
    model.save_pretrained(path)
    WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer
    ).save_pretrained(path)
    return vocab


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-whisper")
    vocab = build_tiny_random_whisper(path)
    return path, vocab


def _clip(seed=0, seconds=1.0):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)


def test_judge_loads_from_local_path_forces_telugu_and_decodes_greedily(tiny_whisper, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path, vocab = tiny_whisper
    judge = create_judge(f"whisper:path={path},max_new_tokens=8")
    prompts = []
    judge.load()
    judge._model.model.decoder.register_forward_pre_hook(
        lambda mod, args, kwargs: prompts.append(kwargs["input_ids"][0].tolist()) if not prompts else None,
        with_kwargs=True,
    )
    first = judge.transcribe(_clip(), 16000)
    second = judge.transcribe(_clip(), 16000)
    assert first == second  # deterministic
    assert prompts[0] == [
        vocab["<|startoftranscript|>"],
        vocab["<|te|>"],
        vocab["<|transcribe|>"],
        vocab["<|notimestamps|>"],
    ]
    info = judge.info
    assert info["model"] == str(path.resolve()) and info["language"] == "te"
    assert info["decoding"] == {"num_beams": 1, "do_sample": False, "max_new_tokens": 8}
    assert len(info["config_sha256"]) == 16 and info["n_params"] > 0


def test_judge_records_the_snapshot_revision_and_rejects_bad_paths(tiny_whisper, tmp_path):
    path, _ = tiny_whisper
    snap = tmp_path / "models--x--y" / "snapshots" / ("ab" * 20)
    shutil.copytree(path, snap)
    assert WhisperJudge(path=str(snap)).info["revision"] == "ab" * 20
    assert WhisperJudge(path=str(path), revision="v1").info["revision"] == "v1"
    with pytest.raises(JudgeError, match="not a folder"):
        WhisperJudge(path=str(tmp_path / "missing"))
    with pytest.raises(JudgeError, match="path="):
        create_judge("whisper")
    with pytest.raises(JudgeError, match="known judges: whisper"):
        create_judge("nosuchjudge:path=x")


def test_score_run_with_judge_scores_wer_from_transcripts(tiny_whisper, tmp_path):
    path, _ = tiny_whisper
    # A manifest data set with Telugu text and a run folder written by hand in the run format.
    texts = {"u1": "తెలుగు భాష", "u2": "నేను ఇంటికి వెళ్తాను"}
    lines = []
    for i, (uid, text) in enumerate(texts.items()):
        sf.write(tmp_path / f"{uid}.wav", _clip(i, 1.5), 16000)
        lines.append(
            json.dumps({"id": uid, "audio": f"{uid}.wav", "text": text, "split": "test"}, ensure_ascii=False)
        )
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    (run / "outputs" / "loopback").mkdir(parents=True)
    events = []
    for uid in texts:
        shutil.copy(tmp_path / f"{uid}.wav", run / "outputs" / "loopback" / f"{uid}.wav")
        events += [
            {"e": "utt_start", "b": "loopback", "u": uid, "a": 1, "t": 0},
            {"e": "utt_end", "b": "loopback", "u": uid, "a": 1, "t": 1, "status": "ok", "out_samples": 24000},
        ]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (run / "run.json").write_text(
        json.dumps(
            {
                "schema": "s2s-bench.run/1",
                "data": {"name": str(tmp_path / "manifest.jsonl"), "split": "test"},
                "backends": [{"key": "loopback", "name": "loopback", "latency_only": False}],
                "summary": {},
            }
        )
    )
    summary = score_run(run, metrics="wer,cer,chrf", judge=f"whisper:path={path},max_new_tokens=8", workers=0)
    scores = [json.loads(x) for x in (run / "scores.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(scores) == 2 * 3
    wer_lines = [s for s in scores if s["metric"] == "wer"]
    total_err = total_words = 0
    for s in wer_lines:
        c = word_errors(texts[s["u"]], s["transcript"])
        assert s["value"] == pytest.approx(c.rate) and s["detail"]["ref_len"] == c.ref_len
        total_err, total_words = total_err + c.errors, total_words + c.ref_len
    assert summary["loopback"]["wer"]["value"] == pytest.approx(total_err / total_words)
    meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert meta["scoring"]["wer"]["judge"]["language"] == "te"
    assert meta["summary"]["loopback"]["metrics"]["cer"]["n"] == 2


def test_without_a_judge_transcript_metrics_say_how_to_set_one():
    (wer,) = get_metrics("wer")
    from harness.metrics import Sample

    r = wer.compute(Sample("x", audio=_clip(), sr=16000, ref_text="తెలుగు"))
    assert r.value is None and r.reason.startswith("n/a: no ASR judge") and "whisper:path=" in r.reason
