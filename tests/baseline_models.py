"""Tiny random models of the baselines' real architectures, saved the way the real checkpoints are laid out.

FAKE MODELS FOR TESTS: every model here has random weights and toy sizes; the tokenizers are trained on a handful of
Telugu sentences. They exist so the backends' loading code (the very code that loads real checkpoints) and their
session logic run in CI with the network off. Their output is noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TELUGU = [
    "నమస్కారం, మీరు ఎలా ఉన్నారు?",
    "నేను బాగున్నాను. మీరు ఎలా ఉన్నారు?",
    "ఈ రోజు వాతావరణం చాలా బాగుంది.",
    "హైదరాబాద్ తెలంగాణ రాజధాని. అక్కడ చాలా మంది ఉంటారు.",
    "మీకు ఏమి కావాలి? నేను సహాయం చేస్తాను.",
    "hello world, this is a test. one two three.",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
WHISPER_SPECIALS = [
    "<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|te|>", "<|translate|>", "<|transcribe|>",
    "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>",
]  # fmt: skip


def _byte_bpe(vocab_size: int = 2000):
    """Byte-level BPE split only at spaces (GPT-2's regex would cut Telugu words at every vowel sign)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(" ", "merged_with_next"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TELUGU, trainer)
    return tok


def build_whisper(path: Path) -> Path:
    """Tiny Whisper (2 s input window), WhisperTokenizer with <|te|>, and a multilingual generation config."""
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )

    bpe = _byte_bpe()
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split()) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tokenizer = WhisperTokenizer(vocab=state["vocab"], merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": WHISPER_SPECIALS[1:]})
    ids = dict(zip(WHISPER_SPECIALS, tokenizer.convert_tokens_to_ids(WHISPER_SPECIALS), strict=True))
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    config = WhisperConfig(
        vocab_size=len(tokenizer), num_mel_bins=80, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_source_positions=100, max_target_positions=64, decoder_start_token_id=sot,
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
    )  # fmt: skip
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, is_multilingual=True,
        lang_to_id={"<|en|>": ids["<|en|>"], "<|te|>": ids["<|te|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"], max_length=64,
    )  # fmt: skip
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    WhisperFeatureExtractor(feature_size=80, chunk_length=2).save_pretrained(path)
    return path


def build_llm(path: Path, extra_tokens: list[str] | None = None) -> Path:
    """Tiny Llama with a byte-level BPE tokenizer (chat template included); ``extra_tokens`` are added (units)."""
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_byte_bpe(), bos_token="<|begin|>", eos_token="<|end|>", pad_token="<|pad|>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|system|>", "<|user|>", "<|assistant|>"]})
    if extra_tokens:
        tokenizer.add_tokens(extra_tokens, special_tokens=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_speecht5(tts: Path, vocoder: Path) -> tuple[Path, Path]:
    """Tiny SpeechT5 TTS with a character sentencepiece tokenizer (as spm_char.model) and a tiny HiFi-GAN."""
    import sentencepiece as spm
    from transformers import (
        SpeechT5Config,
        SpeechT5ForTextToSpeech,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
        SpeechT5Tokenizer,
    )

    tts.mkdir(parents=True, exist_ok=True)
    corpus = tts / "corpus.txt"
    corpus.write_text("\n".join(TELUGU * 4), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tts / "spm_char"), model_type="char", vocab_size=70,
        character_coverage=1.0, pad_id=1, unk_id=3, bos_id=0, eos_id=2,
    )  # fmt: skip
    corpus.unlink()
    tokenizer = SpeechT5Tokenizer(vocab_file=str(tts / "spm_char.model"))
    config = SpeechT5Config(
        vocab_size=len(tokenizer), hidden_size=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, speech_decoder_prenet_units=32,
        speech_decoder_postnet_units=32, speech_decoder_postnet_layers=2, speaker_embedding_dim=512,
        max_text_positions=200, max_speech_positions=400,
    )  # fmt: skip
    SpeechT5ForTextToSpeech(config).save_pretrained(tts)
    tokenizer.save_pretrained(tts)
    vocoder_config = SpeechT5HifiGanConfig(
        upsample_initial_channel=16, upsample_rates=[4, 4, 4, 4], upsample_kernel_sizes=[8, 8, 8, 8],
        resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
    )  # fmt: skip
    SpeechT5HifiGan(vocoder_config).save_pretrained(vocoder)
    return tts, vocoder


def silence_and_tone(seconds: float = 1.0, sr: int = 16000) -> np.ndarray:
    """A test input: a 220 Hz tone at -12 dBFS, float32 mono."""
    t = np.arange(int(seconds * sr)) / sr
    return (0.25 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def script_llm(path: Path, answer: str, after: str = "<|assistant|>") -> list[int]:
    """Rewire the tiny Llama at ``path`` so that greedy decoding after any prompt says ``answer`` and then EOS.

    A SCRIPTED FAKE: attention and MLP outputs are zeroed, so the hidden state is the current token's embedding; each
    token of the answer gets its own basis vector and the LM head maps it to the next token. Needs distinct tokens.
    Returns the answer's token ids.
    """
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = LlamaForCausalLM.from_pretrained(path)
    ids = tokenizer(answer, add_special_tokens=False).input_ids
    chain = [tokenizer.convert_tokens_to_ids(after), *ids, tokenizer.eos_token_id]
    if len(set(chain)) != len(chain) or len(chain) > model.config.hidden_size:
        raise ValueError(
            f"script_llm: {answer!r} needs distinct tokens, at most {model.config.hidden_size - 2}"
        )
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = model.model.embed_tokens.weight
        head = model.lm_head.weight
        emb.zero_()
        head.zero_()
        for k, (cur, nxt) in enumerate(zip(chain[:-1], chain[1:], strict=True)):
            emb[cur, k] = 1.0
            head[nxt, k] = 10.0
    model.config.tie_word_embeddings = False
    model.save_pretrained(path)
    return ids


SEAMLESS_TINY = dict(
    vocab_size=40, t2u_vocab_size=24, char_vocab_size=20, hidden_size=16, encoder_layers=1, decoder_layers=1,
    encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2,
    speech_encoder_layers=1, speech_encoder_attention_heads=2, speech_encoder_intermediate_size=32,
    conv_depthwise_kernel_size=3, t2u_encoder_layers=1, t2u_decoder_layers=1, t2u_encoder_ffn_dim=32,
    t2u_decoder_ffn_dim=32, t2u_encoder_attention_heads=2, t2u_decoder_attention_heads=2,
    t2u_variance_predictor_embed_dim=16, t2u_variance_predictor_hidden_dim=16, upsample_initial_channel=32,
    upsample_rates=[5, 4, 4, 2, 2], upsample_kernel_sizes=[11, 8, 8, 4, 4], resblock_kernel_sizes=[3],
    resblock_dilation_sizes=[[1]], unit_hifi_gan_vocab_size=20, unit_embed_dim=16, lang_embed_dim=4,
    spkr_embed_dim=4, vocoder_num_langs=3, vocoder_num_spkrs=3, variance_predictor_kernel_size=3,
    vocoder_offset=4, max_position_embeddings=64, t2u_max_position_embeddings=128,
    encoder_layerdrop=0.0, decoder_layerdrop=0.0, speech_encoder_layerdrop=0.0,
)  # fmt: skip


def seamless_generation_config(vocab_size: int, tel_id: int) -> object:
    """A generation config with the language and character tables the real one carries (Telugu only)."""
    from transformers import GenerationConfig

    letters = "అఆఇఈఉఊఎఏకగచజటడతదనపబమయరలవసహ"
    return GenerationConfig(
        decoder_start_token_id=3, bos_token_id=2, eos_token_id=3, pad_token_id=0,
        text_decoder_lang_to_code_id={"tel": tel_id}, t2u_lang_code_to_id={"tel": 0},
        vocoder_lang_code_to_id={"tel": 1},
        id_to_text={str(i): ("\u2581" if i % 3 == 0 else "") + letters[i % len(letters)] for i in range(vocab_size)},
        char_to_id={ch: 4 + i for i, ch in enumerate(letters[:15])}, max_length=64,
    )  # fmt: skip


def build_seamless(path: Path) -> Path:
    """Tiny Seamless M4T v2 (speech-to-speech), its generation tables and the real feature extractor settings."""
    from transformers import SeamlessM4TFeatureExtractor, SeamlessM4Tv2Config, SeamlessM4Tv2ForSpeechToSpeech

    config = SeamlessM4Tv2Config(**SEAMLESS_TINY)
    model = SeamlessM4Tv2ForSpeechToSpeech(config)
    model.generation_config = seamless_generation_config(config.vocab_size, tel_id=config.vocab_size - 1)
    from backends.seamless import never_predict_control_units

    never_predict_control_units(model)  # random weights would pick control symbols a trained model never does
    model.save_pretrained(path)
    SeamlessM4TFeatureExtractor().save_pretrained(path)
    return path


UNIT_TOKENS = [f"<{k}>" for k in range(20)] + ["<sosp>", "<eosp>", "<eoh>"]


def build_speechgpt(root: Path) -> dict[str, Path]:
    """Tiny HuBERT (+ km.npy with 20 centroids), a tiny unit LM (units <0>..<19>) and a tiny unit vocoder."""
    from transformers import HubertConfig, HubertModel

    from backends.speechgpt.vocoder import UnitHiFiGAN, save_unit_vocoder

    hubert = root / "hubert"
    config = HubertConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )  # fmt: skip
    HubertModel(config).save_pretrained(hubert)
    np.save(hubert / "km.npy", np.random.default_rng(0).standard_normal((20, 16)).astype(np.float32))
    llm = build_llm(root / "llm", extra_tokens=UNIT_TOKENS)
    vocoder = save_unit_vocoder(UnitHiFiGAN(TINY_VOCODER()), root / "vocoder")
    return {"hubert": hubert, "llm": llm, "vocoder": vocoder}


def TINY_VOCODER(**overrides):  # noqa: N802 - reads as a preset
    from backends.speechgpt.vocoder import UnitVocoderConfig

    return UnitVocoderConfig(
        num_embeddings=20, embedding_dim=8, upsample_initial_channel=64, resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1]], **overrides,
    )  # fmt: skip


def build_vits(path: Path) -> Path:
    """Tiny VITS (the MMS-TTS architecture) with a character vocab.json over the test sentences' letters."""
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    path.mkdir(parents=True, exist_ok=True)
    chars = ["<pad>", *sorted(set("".join(TELUGU)))]
    (path / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(chars)}, ensure_ascii=False))
    tokenizer = VitsTokenizer(
        vocab_file=str(path / "vocab.json"), add_blank=True, normalize=False, phonemize=False, language="tel"
    )
    config = VitsConfig(
        vocab_size=len(chars), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32, flow_size=8,
        spectrogram_bins=33, upsample_initial_channel=16, upsample_rates=[8, 8, 4], upsample_kernel_sizes=[16, 16, 8],
        resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1]], prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1, posterior_encoder_num_wavenet_layers=1, duration_predictor_num_flows=1,
        duration_predictor_filter_channels=16, sampling_rate=16000,
    )  # fmt: skip
    VitsModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
