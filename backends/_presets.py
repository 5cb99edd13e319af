"""Full-size architectures written out from their published sizes, for ``weights=random`` (latency only).

Nothing can be downloaded on the benchmark machines, so these configs are spelled out here from the published
``config.json`` files of each checkpoint. A model built from them has the real shapes and the real compute per token,
and random weights: its timings are meaningful, its output is noise. Generated lengths are fixed by the backends
(``min_new_tokens == max_new_tokens``) so that random weights do not stop early or run on.
"""

from __future__ import annotations

from typing import Any

WHISPER_SIZES = {  # d_model, layers (encoder = decoder), heads; ffn = 4 x d_model
    "whisper-tiny": (384, 4, 6),
    "whisper-base": (512, 6, 8),
    "whisper-small": (768, 12, 12),
    "whisper-medium": (1024, 24, 16),
}
LLAMA_SIZES = {  # hidden, intermediate, layers, heads, kv heads (vocabulary 128256, tied embeddings)
    "llama-3.2-1b": (2048, 8192, 16, 32, 8),
    "llama-3.2-3b": (3072, 8192, 28, 24, 8),
}
# The transformers defaults of these configs are the published sizes (speecht5_tts: 768 wide, 12 encoder + 6 decoder
# layers, 80 mels; speecht5_hifigan: 512 channels, x256 upsampling; seamless-m4t-v2-large: 1024 wide, 24 layers per
# stack; hubert-base: 768 wide, 12 layers), so the presets are their keyword overrides: none.
SPEECHT5_SIZES: dict[str, tuple[dict, dict]] = {"speecht5": ({}, {})}
SEAMLESS_SIZES: dict[str, dict] = {"seamless-m4t-v2-large": {}}
HUBERT_SIZES: dict[str, dict] = {"hubert-base": {}}


def architectures(role: str) -> tuple[str, ...]:
    """The architecture names ``weights=random`` accepts for a role (asr, llm, tts, seamless, hubert)."""
    table = {"asr": WHISPER_SIZES, "llm": LLAMA_SIZES, "tts": SPEECHT5_SIZES, "seamless": SEAMLESS_SIZES}
    return tuple(table.get(role, HUBERT_SIZES))


WHISPER_SOT = 50258
WHISPER_EOT = 50257
WHISPER_FIRST_LANG = 50259
WHISPER_TRANSLATE = 50358
WHISPER_TRANSCRIBE = 50359
WHISPER_NO_TIMESTAMPS = 50363


def whisper(name: str) -> tuple[Any, Any]:
    """(WhisperConfig, GenerationConfig) of openai/whisper-{tiny,base,small,medium}."""
    from transformers import GenerationConfig, WhisperConfig
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    d_model, layers, heads = WHISPER_SIZES[name]
    config = WhisperConfig(
        vocab_size=51865,
        num_mel_bins=80,
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=4 * d_model,
        decoder_ffn_dim=4 * d_model,
        max_source_positions=1500,
        max_target_positions=448,
        decoder_start_token_id=WHISPER_SOT,
        bos_token_id=WHISPER_EOT,
        eos_token_id=WHISPER_EOT,
        pad_token_id=WHISPER_EOT,
    )
    lang_to_id = {f"<|{code}|>": WHISPER_FIRST_LANG + i for i, code in enumerate(list(LANGUAGES)[:99])}
    generation = GenerationConfig(
        decoder_start_token_id=WHISPER_SOT,
        bos_token_id=WHISPER_EOT,
        eos_token_id=WHISPER_EOT,
        pad_token_id=WHISPER_EOT,
        is_multilingual=True,
        lang_to_id=lang_to_id,
        task_to_id={"transcribe": WHISPER_TRANSCRIBE, "translate": WHISPER_TRANSLATE},
        no_timestamps_token_id=WHISPER_NO_TIMESTAMPS,
        # Random weights must write text tokens only: a timestamp token sends generate() into its segment loop
        # (seen: 5x the decoder steps). The released config suppresses a list of its own, too.
        suppress_tokens=list(range(WHISPER_EOT + 1, 51865)),
        max_length=448,
    )
    return config, generation


def llama(name: str, extra_tokens: int = 0) -> Any:
    """LlamaConfig of meta-llama/Llama-3.2-{1B,3B}-Instruct (``extra_tokens`` widens the vocabulary, e.g. units)."""
    from transformers import LlamaConfig

    hidden, intermediate, layers, heads, kv_heads = LLAMA_SIZES[name]
    return LlamaConfig(
        vocab_size=128256 + extra_tokens,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        tie_word_embeddings=True,
        bos_token_id=128000,
        eos_token_id=128009,
    )


def speecht5(name: str) -> tuple[Any, Any]:
    """(SpeechT5Config, SpeechT5HifiGanConfig) of microsoft/speecht5_tts + microsoft/speecht5_hifigan."""
    from transformers import SpeechT5Config, SpeechT5HifiGanConfig

    tts, vocoder = SPEECHT5_SIZES[name]
    return SpeechT5Config(**tts), SpeechT5HifiGanConfig(**vocoder)


def seamless(name: str) -> tuple[Any, Any]:
    """(SeamlessM4Tv2Config, GenerationConfig) of facebook/seamless-m4t-v2-large, with a made-up language table."""
    from transformers import GenerationConfig, SeamlessM4Tv2Config

    config = SeamlessM4Tv2Config(**SEAMLESS_SIZES[name])
    chars = [chr(c) for c in range(0x0C00, 0x0C80)] + [chr(c) for c in range(0x61, 0x7B)]
    generation = GenerationConfig(
        decoder_start_token_id=config.eos_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        text_decoder_lang_to_code_id={
            "tel": config.vocab_size - 2
        },  # random weights: any id, only shapes matter
        t2u_lang_code_to_id={"tel": 0},
        vocoder_lang_code_to_id={"tel": config.vocoder_num_langs - 1},
        # Every token spells two Telugu letters: what a real Telugu subword costs the char-level t2u model.
        id_to_text={str(i): chars[i % 128] + chars[(i // 128) % 128] for i in range(config.vocab_size)},
        char_to_id={ch: 4 + i % (config.char_vocab_size - 4) for i, ch in enumerate(chars)},
        max_length=256,
    )
    return config, generation


def hubert(name: str) -> Any:
    """HubertConfig of facebook/hubert-base-ls960 (the size of SpeechGPT's mHuBERT)."""
    from transformers import HubertConfig

    return HubertConfig(**HUBERT_SIZES[name])
