"""The cascade on tiny random models of its real architectures (Whisper, Llama, SpeechT5 + HiFi-GAN).

The models are FAKES with random weights (see tests/baseline_models.py), saved to a temp dir and loaded back through
the backend's own loading code, the same code that loads real checkpoints.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")

import baseline_models as bm  # noqa: E402

from backends import _hf, _presets  # noqa: E402
from backends._streaming import split_sentences  # noqa: E402
from backends.cascade import CascadeBackend  # noqa: E402
from harness.backend import BackendError, OptionError  # noqa: E402

ANSWER = "నమస్కారం, మీరు ఎలా ఉన్నారు? హైదరాబాద్ తెలంగాణ రాజధాని. బాగుంది"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("cascade_models")
    bm.build_whisper(root / "asr")
    bm.build_llm(root / "llm")
    answer_ids = bm.script_llm(root / "llm", ANSWER)
    bm.build_speecht5(root / "tts", root / "vocoder")
    yield {"root": root, "answer_ids": answer_ids}
    _hf.clear_shared()


def spec(models, **extra):
    root = models["root"]
    opts = dict(asr=root / "asr", llm=root / "llm", tts=root / "tts", vocoder=root / "vocoder", device="cpu")
    opts.update(extra)
    return {k: str(v) for k, v in opts.items()}


def run_turn(backend, audio):
    session = backend.open_session()
    session.push(audio[: len(audio) // 2])
    session.push(audio[len(audio) // 2 :])
    session.end_input()
    chunks = []
    while not session.done:
        chunk = session.poll(timeout=5.0)
        if chunk is not None:
            chunks.append(chunk)
    return chunks


def marks_in_order(chunks):
    return [m for c in chunks for m in c.marks]


def test_split_sentences_cuts_complete_sentences_and_long_clauses():
    done, rest = split_sentences("నమస్కారం. మీరు ఎలా ఉన్నారు? నేను")
    assert done == ["నమస్కారం.", "మీరు ఎలా ఉన్నారు?"]
    assert rest == "నేను"
    assert split_sentences("అవును, సరే")[0] == []  # a short clause waits
    done, rest = split_sentences("ఈ రోజు వాతావరణం చాలా బాగుంది, కానీ")
    assert done == ["ఈ రోజు వాతావరణం చాలా బాగుంది,"] and rest == "కానీ"
    assert split_sentences("ధర 3.")[0] == []  # may still become 3.5


def test_sequential_mode_gives_every_stage_mark_then_all_audio_at_once(models):
    backend = CascadeBackend(**spec(models, mode="sequential"))
    backend.load()
    chunks = run_turn(backend, bm.silence_and_tone())
    assert marks_in_order(chunks) == ["asr_final", "llm_first_token", "llm_final", "tts_first_audio"]
    audio = [c.audio for c in chunks if c.audio is not None]
    assert len(audio) == 1 and audio[0].dtype == np.float32 and audio[0].size > 0
    assert np.isfinite(audio[0]).all()
    llm_final = next(c for c in chunks if "llm_final" in c.marks)
    assert llm_final.text == ANSWER
    assert not backend.latency_only and backend.output_sample_rate == 16000


def test_sentence_mode_speaks_each_sentence_as_soon_as_it_is_complete(models):
    backend = CascadeBackend(**spec(models, mode="sentence"))
    backend.load()
    chunks = run_turn(backend, bm.silence_and_tone())
    marks = marks_in_order(chunks)
    assert marks[:4] == ["asr_final", "llm_first_token", "first_sentence", "tts_first_audio"]
    assert marks.index("tts_first_audio") < marks.index("llm_final")
    spoken = [c.text for c in chunks if c.audio is not None]
    assert spoken == ["నమస్కారం, మీరు ఎలా ఉన్నారు?", "హైదరాబాద్ తెలంగాణ రాజధాని.", "బాగుంది"]


def test_a_vits_tts_folder_replaces_speecht5_and_speaks_telugu_letters(models, tmp_path):
    vits = bm.build_vits(tmp_path / "mms-tts-tel")
    backend = CascadeBackend(**spec(models, tts=vits, vocoder=tmp_path / "unused", mode="sentence"))
    backend.load()
    assert backend.models["tts"]["kind"] == "vits"
    chunks = run_turn(backend, bm.silence_and_tone())
    audio = [c.audio for c in chunks if c.audio is not None]
    assert len(audio) == 3 and all(a.size > 0 and np.isfinite(a).all() for a in audio)


def test_speaker_vector_from_npy_is_used_and_bad_ones_are_refused(models, tmp_path):
    good = tmp_path / "spk.npy"
    np.save(good, np.full(512, 0.04, np.float32))
    backend = CascadeBackend(**spec(models, speaker=good))
    backend.load()
    assert np.allclose(backend.speaker, 0.04)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros(10, np.float32))
    with pytest.raises(OptionError, match="512 finite floats"):
        CascadeBackend(**spec(models, speaker=bad)).load()


def test_missing_weights_name_the_files_and_the_repo(models, tmp_path, monkeypatch):
    monkeypatch.delenv(_hf.MODELS_ENV, raising=False)
    with pytest.raises(BackendError) as err:
        CascadeBackend(**spec(models, asr=tmp_path / "nowhere")).load()
    text = str(err.value)
    assert "Whisper" in text and "nowhere" in text and "openai/whisper-small" in text
    assert "preprocessor_config.json" in text and "asr=" in text


def test_models_folder_env_var_is_searched(models, monkeypatch):
    monkeypatch.setenv(_hf.MODELS_ENV, str(models["root"]))
    files = _hf.ModelFiles("cascade", "Whisper", "asr", "asr", "openai/whisper-small")
    assert _hf.resolve_model_dir(files, None) == models["root"] / "asr"


def test_empty_input_is_a_clear_error(models):
    backend = CascadeBackend(**spec(models))
    backend.load()
    session = backend.open_session()
    session.end_input()
    with pytest.raises(BackendError, match="empty"):
        while not session.done:
            session.poll(timeout=5.0)


@pytest.fixture
def tiny_presets(monkeypatch):
    """Shrink the full-size presets to toy widths (same vocabularies and token ids) so weights=random runs fast."""
    monkeypatch.setitem(_presets.WHISPER_SIZES, "whisper-test", (16, 1, 2))
    monkeypatch.setitem(_presets.LLAMA_SIZES, "llama-test", (16, 32, 1, 2, 1))
    small = dict(hidden_size=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                 decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, speech_decoder_prenet_units=16,
                 speech_decoder_postnet_units=16, speech_decoder_postnet_layers=1)  # fmt: skip
    voc = dict(upsample_initial_channel=32, resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1]])
    monkeypatch.setitem(_presets.SPEECHT5_SIZES, "speecht5-test", (small, voc))
    yield
    _hf.clear_shared()


@pytest.mark.parametrize("mode", ["sequential", "sentence"])
def test_random_weights_run_fixed_lengths_and_say_latency_only(tiny_presets, mode):
    backend = CascadeBackend(
        weights="random", asr="whisper-test", llm="llama-test", tts="speecht5-test", device="cpu", mode=mode,
        max_new_tokens=30, asr_max_new_tokens=8,
    )  # fmt: skip
    backend.load()
    assert backend.latency_only and backend.describe()["latency_only"]
    chunks = run_turn(backend, bm.silence_and_tone(0.5))
    asr = next(c for c in chunks if "asr_final" in c.marks)
    assert asr.text == ""  # no tokenizer: nothing readable is claimed
    audio = [c.audio for c in chunks if c.audio is not None]
    # 30 answer tokens -> sentences of 12, 12, 6 tokens -> 3 chars per token -> 5 mel frames per char, 256 samples each
    frames = sum(int(n * 3 * 5.0) // 2 * 2 for n in (12, 12, 6))
    assert sum(a.size for a in audio) == frames * 256
    assert len(audio) == (3 if mode == "sentence" else 1)
    assert all(abs(np.abs(a).max() - 0.5) < 1e-3 for a in audio)  # audible, so the harness can time TTFA
    assert "tts_first_audio" in marks_in_order(chunks)


def test_random_weights_take_exactly_the_fixed_number_of_decoder_steps(tiny_presets, monkeypatch):
    backend = CascadeBackend(
        weights="random", asr="whisper-test", llm="llama-test", tts="speecht5-test", device="cpu",
        max_new_tokens=10, asr_max_new_tokens=6,
    )  # fmt: skip
    backend.load()
    whisper = backend.models["asr"]["model"]
    with (
        torch.no_grad()
    ):  # make timestamp tokens the random model's favourites: they must still never be chosen
        whisper.proj_out.weight[_presets.WHISPER_NO_TIMESTAMPS + 1 :] *= 50
    steps = {"asr": 0, "llm": 0}
    for role, module in (("asr", backend.models["asr"]["model"].model.decoder),
                         ("llm", backend.models["llm"]["model"].model)):  # fmt: skip
        original = module.forward

        def counted(*args, _original=original, _role=role, **kwargs):
            steps[_role] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, "forward", counted)
    run_turn(backend, bm.silence_and_tone(0.5))
    # Whisper: 6 steps (a timestamp token would send generate() into its segment loop); Llama: prefill + 9 more.
    assert steps == {"asr": 6, "llm": 10}


def test_random_weights_refuse_an_unknown_architecture():
    with pytest.raises(OptionError, match="whisper-small"):
        CascadeBackend(weights="random", asr="whisper-huge", device="cpu").load()


def test_runner_records_the_stage_marks_and_the_stage_table_reads_them(models, tmp_path, monkeypatch):
    from backends.stage_table import stage_table
    from harness.runner import run_benchmark

    # The models found through $S2S_BENCH_MODELS under their default folder names (short specs, too).
    root = tmp_path / "models"
    root.mkdir()
    for role, folder in (("asr", "whisper-small"), ("llm", "llama-3.2-1b-instruct"), ("tts", "speecht5_tts"),
                         ("vocoder", "speecht5_hifigan")):  # fmt: skip
        (root / folder).symlink_to(models["root"] / role)
    monkeypatch.setenv(_hf.MODELS_ENV, str(root))
    specs = [f"cascade:device=cpu,mode={mode}" for mode in ("sequential", "sentence")]
    run = run_benchmark(
        specs, "synthetic-clips", limit=2, pacing="fast", warmup=0, out=tmp_path / "run", progress=False
    )
    table = stage_table(run)
    header, _, sequential, sentence, seed = table.splitlines()
    assert "ASR (ms)" in header and "LLM (ms)" in header and "TTS first sentence (ms)" in header
    assert "TTFA (ms)" in header
    assert "mode=sequential" in sequential and "| 2 |" in sequential
    assert "mode=sentence" in sentence and "| 2 |" in sentence
    assert seed.startswith("| seed project, GPU") and "2,000" in seed


def test_dtype_auto_follows_the_cpu_flags_and_a_forced_slow_bf16_is_loud(models, monkeypatch):
    from test_dtype_auto import NO_AVX512, ZEN4

    from backends import _dtype

    monkeypatch.setattr(_dtype, "cpu_features", lambda: NO_AVX512)
    plain = CascadeBackend(**spec(models))  # dtype=auto is the default
    plain.load()
    assert plain.models["llm"]["model"].dtype == torch.float32
    assert plain.describe()["dtype"]["resolved"] == "float32" and "warnings" not in plain.describe()
    with pytest.warns(_dtype.SlowDtypeWarning, match="cascade: dtype=bfloat16 on a CPU without native"):
        forced = CascadeBackend(**spec(models, dtype="bfloat16"))
        forced.load()
    assert forced.models["asr"]["model"].dtype == torch.bfloat16  # honoured, and said to be slow
    assert forced.describe()["warnings"] == [forced.dtype_choice.warning]

    monkeypatch.setattr(_dtype, "cpu_features", lambda: ZEN4)
    native = CascadeBackend(**spec(models))
    native.load()
    assert native.models["tts"]["model"].dtype == torch.bfloat16
    described = native.describe()
    assert described["options"]["dtype"] == "bfloat16" and described["dtype"]["requested"] == "auto"
    assert "avx512_bf16" in described["dtype"]["reason"]


def test_threads_are_set_again_at_each_turn_since_torch_counts_them_per_process(models, monkeypatch):
    backend = CascadeBackend(**spec(models, threads=2))
    backend.load()
    seen = []
    speak = backend.speak
    monkeypatch.setattr(backend, "speak", lambda *a: seen.append(torch.get_num_threads()) or speak(*a))
    torch.set_num_threads(1)  # what custom (threads=1) does when it loads or runs a turn in the same run
    try:
        run_turn(backend, bm.silence_and_tone())
    finally:
        torch.set_num_threads(2)
    assert seen and set(seen) == {2}  # the turn's own thread ran with the backend's count


def test_behind_the_endpointer_the_cascade_starts_when_the_adapter_decides(tmp_path, models):
    """endpointing=system: the adapter ends the turn after its hangover, and every stage mark comes after that
    decision. (These tiny random models speak near-silence, so the turn is no_answer at the listening limit.)"""
    from harness.datasets import synthetic_clips
    from harness.latency import utterance_latencies
    from harness.rescore import check_run
    from harness.results import load_run
    from harness.runner import run_benchmark
    from harness.turns.endpointer import EndpointerSettings

    key = "cascade:" + ",".join(f"{k}={v}" for k, v in spec(models).items())
    run = load_run(
        run_benchmark(
            [key],
            utterances=[u for u in synthetic_clips(10) if u.id == "synth-0004"],
            out=tmp_path / "run",
            endpointing="system",
            endpointer=EndpointerSettings(vad="energy", hangover_ms=300),
            warmup=0,
            timeout_s=3.0,
            progress=False,
        )
    )
    (row,) = utterance_latencies(run.events)
    assert row.status == "no_answer" and row.error is None
    assert 300 - 40 <= row.marks["endpoint"] < row.marks["asr_final"] < row.marks["tts_first_audio"]
    assert run.meta["backends"][0]["endpointing"] == "endpointer adapter"
    assert run.summary[key]["turns"]["scenarios"]["smooth"]["endpoint_ms"]["n"] == 1
    assert check_run(run) == []
