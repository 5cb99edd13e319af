"""``cascade``: Whisper ASR -> a Llama-family chat model -> SpeechT5 TTS + HiFi-GAN (today's usual baseline).

The whole user turn goes to Whisper (language fixed to Telugu, ``language="te"``, never detected); its transcript goes
to the chat model under a Telugu system prompt, whose tokens are streamed out of ``generate`` as they are produced;
the answer is spoken by SpeechT5 with a speaker x-vector and its HiFi-GAN vocoder (or by a VITS model such as
MMS-TTS Telugu, when ``tts=`` points at one).

Two modes:

- ``sequential``: each stage waits for the one before; all audio is handed out when the whole answer is spoken.
- ``sentence``: TTS starts on the first complete sentence or clause of the LLM stream and audio is handed out per
  sentence while the LLM goes on.

Stage marks, emitted the moment each happens (the harness stamps them on receipt): ``asr_final`` (transcript
ready), ``llm_first_token``, ``first_sentence`` (sentence mode: the first piece is complete), ``llm_final`` (answer
complete) and ``tts_first_audio`` (with the first audio chunk).

SpeechT5's tokenizer has no Telugu letters: it reads Telugu text as unknown characters and speaks garbage. The
cascade is here for its latency profile; for Telugu speech pass ``tts=`` a VITS model (``facebook/mms-tts-tel``).

``weights=random`` builds full-size architectures (``asr=whisper-small``, ``llm=llama-3.2-1b``, ``tts=speecht5``)
with random weights and fixed lengths (``asr_max_new_tokens`` transcript tokens, ``max_new_tokens`` answer tokens,
sentences of ``RANDOM_SENTENCE_TOKENS`` tokens, ``RANDOM_FRAMES_PER_CHAR`` mel frames per character): latency only.
Random SpeechT5 speaks near-silence, so each piece is scaled to a ``RANDOM_PEAK`` peak to keep TTFA defined.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.backend import (
    BackendError,
    OfflineBackend,
    Option,
    OptionError,
    OutputChunk,
    Session,
)
from harness.hookspecs import hookimpl

from . import _dtype, _hf, _presets
from ._streaming import TokenQueue, generate_in_thread, split_sentences

SYSTEM_PROMPT_TE = "మీరు సహాయకరమైన తెలుగు వాయిస్ అసిస్టెంట్. ఎప్పుడూ తెలుగులోనే, చిన్న వాక్యాలలో, మాట్లాడే భాషలో జవాబు ఇవ్వండి."
RANDOM_PROMPT_TOKENS = 64
"""weights=random: chat-template + system-prompt tokens before the transcript (the Llama 3 template with the Telugu
system prompt above is about this long)."""
RANDOM_SENTENCE_TOKENS = 12
"""weights=random: answer tokens per sentence (no tokenizer, so sentences are cut by count)."""
RANDOM_CHARS_PER_TOKEN = 3
"""weights=random: characters SpeechT5 reads per answer token."""
RANDOM_FRAMES_PER_CHAR = 5.0
"""weights=random: mel frames (16 ms each) SpeechT5 generates per character, about 80 ms of speech."""
RANDOM_PEAK = 0.5
"""weights=random: the peak each synthesized piece is scaled to, so that TTFA is defined (see :meth:`speak`)."""
SPEAKER_DIM = 512

FILES = {
    "asr": _hf.ModelFiles(
        "cascade",
        "Whisper",
        "asr",
        "whisper-small",
        "openai/whisper-small",
        needs=("preprocessor_config.json", "generation_config.json", "tokenizer_config.json"),
        describe="config.json, model.safetensors, generation_config.json, preprocessor_config.json, tokenizer files",
    ),
    "llm": _hf.ModelFiles(
        "cascade",
        "chat LLM",
        "llm",
        "llama-3.2-1b-instruct",
        "meta-llama/Llama-3.2-1B-Instruct",
        needs=("tokenizer_config.json",),
        describe="config.json, model.safetensors, tokenizer.json, tokenizer_config.json (with a chat template)",
    ),
    "tts": _hf.ModelFiles(
        "cascade",
        "SpeechT5 TTS",
        "tts",
        "speecht5_tts",
        "microsoft/speecht5_tts",
        needs=("tokenizer_config.json",),
        describe="config.json, model.safetensors, spm_char.model, tokenizer_config.json",
    ),
    "vocoder": _hf.ModelFiles(
        "cascade",
        "HiFi-GAN vocoder",
        "vocoder",
        "speecht5_hifigan",
        "microsoft/speecht5_hifigan",
        describe="config.json, model.safetensors",
    ),
}


class CascadeBackend(OfflineBackend):
    name = "cascade"
    description = "Whisper ASR -> Llama chat model -> SpeechT5 TTS (modes: sequential, sentence)"
    output_sample_rate = 16000
    options = {
        "mode": Option(
            str,
            "sequential",
            "sequential: stage after stage; sentence: TTS per LLM sentence",
            ("sequential", "sentence"),
        ),
        "weights": Option(
            str,
            "local",
            "local: load from paths; random: full-size architectures, latency only",
            ("local", "random"),
        ),
        "asr": Option(str, None, "Whisper folder (weights=random: an architecture, default whisper-small)"),
        "llm": Option(str, None, "Llama-family chat model folder (weights=random: default llama-3.2-1b)"),
        "tts": Option(
            str, None, "SpeechT5 TTS folder, or a VITS folder such as mms-tts-tel (random: speecht5)"
        ),
        "vocoder": Option(str, None, "SpeechT5 HiFi-GAN folder (not used with a VITS tts)"),
        "speaker": Option(
            str, None, "x-vector .npy (512 floats) for SpeechT5; default a fixed pseudo x-vector"
        ),
        "system_prompt": Option(str, SYSTEM_PROMPT_TE, "the chat model's system prompt"),
        "device": Option(str, "auto", "auto, cpu, cuda, cuda:N"),
        "dtype": Option(str, "auto", _dtype.DTYPE_HELP + " (every model)", _dtype.DTYPE_CHOICES),
        "max_new_tokens": Option(int, 64, "answer tokens at most (weights=random: exactly)", min=1),
        "asr_max_new_tokens": Option(int, 96, "transcript tokens at most (weights=random: exactly)", min=1),
        "threads": Option(
            int,
            0,
            "torch CPU threads, set at load and at each turn (0 = leave as is: give it beside custom)",
            min=0,
        ),
    }

    def __init__(self, **opts: Any) -> None:
        super().__init__(**opts)
        self.models: dict[str, Any] = {}
        self.dtype_choice: _dtype.DtypeChoice | None = None

    @classmethod
    def weights_status(cls) -> tuple[bool, str]:
        return _hf.weights_status(list(FILES.values()))

    @property
    def latency_only(self) -> bool:
        return self.opts["weights"] == "random"

    def load(self) -> None:
        _hf.require("transformers", "cascade")
        _hf.require("torch", "cascade")
        _hf.apply_threads(self.opts["threads"])
        device = _hf.torch_device(self.name, self.opts["device"])
        self.dtype_choice = _dtype.announce(_dtype.resolve_dtype(self.name, self.opts["dtype"], device))
        dtype = _hf.torch_dtype(self.dtype_choice.resolved)
        o = self.opts
        if o["weights"] == "random":
            asr, llm, tts = o["asr"] or "whisper-small", o["llm"] or "llama-3.2-1b", o["tts"] or "speecht5"
            for role, arch in (("asr", asr), ("llm", llm), ("tts", tts)):
                if arch not in _presets.architectures(role):
                    raise OptionError(
                        f"Expected option `{role}` of backend `cascade` with weights=random to be one of "
                        f"{', '.join(_presets.architectures(role))} but got {arch!r}"
                    )
            key = ("random", str(device), self.dtype_choice.resolved)
            self.models["asr"] = _hf.shared((*key, asr), lambda: _random_whisper(asr, device, dtype))
            self.models["llm"] = _hf.shared((*key, llm), lambda: _random_llm(llm, device, dtype))
            self.models["tts"] = _hf.shared((*key, tts), lambda: _random_speecht5(tts, device, dtype))
        else:
            asr_dir = _hf.resolve_model_dir(FILES["asr"], o["asr"])
            llm_dir = _hf.resolve_model_dir(FILES["llm"], o["llm"])
            tts_dir = _hf.resolve_model_dir(_tts_files(o["tts"]), o["tts"])
            key = ("local", str(device), self.dtype_choice.resolved)
            self.models["asr"] = _hf.shared(
                (*key, str(asr_dir)), lambda: _load_whisper(asr_dir, device, dtype)
            )
            self.models["llm"] = _hf.shared((*key, str(llm_dir)), lambda: _load_llm(llm_dir, device, dtype))
            if _model_type(tts_dir) == "vits":
                self.models["tts"] = _hf.shared(
                    (*key, str(tts_dir)), lambda: _load_vits(tts_dir, device, dtype)
                )
            else:
                voc_dir = _hf.resolve_model_dir(FILES["vocoder"], o["vocoder"])
                self.models["tts"] = _hf.shared(
                    (*key, str(tts_dir), str(voc_dir)),
                    lambda: _load_speecht5(tts_dir, voc_dir, device, dtype),
                )
        self.speaker = _speaker_vector(o["speaker"])
        self.output_sample_rate = self.models["tts"]["sample_rate"]

    def open_session(self) -> Session:
        if not self.models:
            self.load()
        return super().open_session()

    def shutdown(self) -> None:
        self.models.clear()

    def describe(self) -> dict[str, Any]:
        return _dtype.describe_dtype(super().describe(), self.dtype_choice)

    # -- the three stages -------------------------------------------------------------------------------------

    def transcribe(self, audio: np.ndarray) -> tuple[str, list[int]]:
        """Whisper with language="te", task="transcribe"; returns (text, token ids)."""
        import torch

        asr = self.models["asr"]
        model = asr["model"]
        features = asr["features"](audio, sampling_rate=16000, return_tensors="pt").input_features
        features = features.to(model.device, model.dtype)
        n = min(self.opts["asr_max_new_tokens"], model.config.max_target_positions - 4)  # 4 prompt tokens
        fixed = {"min_new_tokens": n} if self.latency_only else {}
        with torch.inference_mode():
            ids = model.generate(features, language="te", task="transcribe", max_new_tokens=n, **fixed)
        ids = ids[0].tolist()
        tokenizer = asr["tokenizer"]
        text = tokenizer.decode(ids, skip_special_tokens=True).strip() if tokenizer is not None else ""
        return text, ids

    def prompt_ids(self, transcript: str, transcript_ids: list[int]) -> Any:
        """The chat prompt as a (1, n) LongTensor on the LLM's device."""
        import torch

        llm = self.models["llm"]
        tokenizer = llm["tokenizer"]
        if tokenizer is None:  # weights=random: the same length a real prompt would have
            n = RANDOM_PROMPT_TOKENS + len(transcript_ids)
            ids = torch.randint(
                0, llm["model"].config.vocab_size, (1, n), generator=torch.Generator().manual_seed(n)
            )
        else:
            messages = [
                {"role": "system", "content": self.opts["system_prompt"]},
                {"role": "user", "content": transcript},
            ]
            if tokenizer.chat_template:
                ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
                if not isinstance(ids, torch.Tensor):  # transformers >= 5 returns a BatchEncoding
                    ids = ids["input_ids"]
            else:
                ids = tokenizer(
                    f"{self.opts['system_prompt']}\n\n{transcript}\n", return_tensors="pt"
                ).input_ids
        return ids.to(llm["model"].device)

    def speak(self, text: str, n_tokens: int) -> np.ndarray:
        """Synthesize one piece of the answer; float32 at ``output_sample_rate``."""
        import torch

        tts = self.models["tts"]
        model = tts["model"]
        with torch.inference_mode():
            if tts["kind"] == "vits":
                inputs = tts["tokenizer"](text, return_tensors="pt").to(model.device)
                if inputs.input_ids.shape[1] == 0:
                    return np.zeros(0, np.float32)
                wave = model(**inputs).waveform[0]
            else:
                if tts["tokenizer"] is None:  # weights=random: characters from the token count
                    n = max(1, n_tokens * RANDOM_CHARS_PER_TOKEN)
                    ids = torch.randint(
                        4, model.config.vocab_size, (1, n), generator=torch.Generator().manual_seed(n)
                    )
                    ratios = {"minlenratio": RANDOM_FRAMES_PER_CHAR, "maxlenratio": RANDOM_FRAMES_PER_CHAR}
                else:
                    ids = tts["tokenizer"](text, return_tensors="pt").input_ids[
                        :, : model.config.max_text_positions
                    ]
                    ratios = {}
                speaker = torch.from_numpy(self.speaker)[None].to(model.device, model.dtype)
                wave = model.generate_speech(ids.to(model.device), speaker, vocoder=tts["vocoder"], **ratios)
        wave = wave.float().cpu().numpy().reshape(-1)
        peak = float(np.abs(wave).max()) if wave.size else 0.0
        if self.latency_only and peak > 0:
            # Random weights speak near-silence that the harness's audibility rule (-40 dBFS) would never hear, so
            # TTFA would be undefined; scaling to a 0.5 peak makes the answer audible where it is (costs ~nothing).
            wave = wave * (RANDOM_PEAK / peak)
        return wave

    def respond(self, audio: np.ndarray, emit: Callable[[OutputChunk], None], stop: threading.Event) -> None:
        if audio.size == 0:
            raise BackendError("cascade: the input utterance is empty (0 samples)")
        _hf.apply_threads(self.opts["threads"])  # process-wide: another backend's turn may have changed it
        transcript, transcript_ids = self.transcribe(audio)
        emit(OutputChunk(marks=("asr_final",), text=transcript))

        llm = self.models["llm"]
        model, tokenizer = llm["model"], llm["tokenizer"]
        prompt = self.prompt_ids(transcript, transcript_ids)
        n = self.opts["max_new_tokens"]
        fixed = {"min_new_tokens": n} if self.latency_only else {}
        streamer = TokenQueue(on_first=lambda: emit(OutputChunk(marks=("llm_first_token",))))
        pad = tokenizer.pad_token_id if tokenizer is not None and tokenizer.pad_token_id is not None else None
        generate_in_thread(
            _hf.inference_mode(model.generate),
            streamer,
            input_ids=prompt,
            attention_mask=prompt.new_ones(prompt.shape),
            max_new_tokens=n,
            do_sample=False,
            pad_token_id=pad if pad is not None else model.generation_config.eos_token_id,
            stopping_criteria=_stop_on(stop),
            **fixed,
        )
        sentence_mode = self.opts["mode"] == "sentence"
        pieces: list[tuple[str, int]] = []  # (text, answer tokens in it)
        answer_ids: list[int] = []
        used_tokens = 0
        said_chars = 0
        first_audio = True
        answer = ""

        def say(text: str, n_tokens: int) -> None:
            nonlocal first_audio
            wave = self.speak(text, n_tokens)
            emit(OutputChunk(audio=wave, marks=("tts_first_audio",) if first_audio else (), text=text))
            first_audio = False

        for token in streamer:
            answer_ids.append(token)
            if tokenizer is None:
                if len(answer_ids) - used_tokens >= RANDOM_SENTENCE_TOKENS:
                    pieces.append(("", len(answer_ids) - used_tokens))
                    used_tokens = len(answer_ids)
            else:
                answer = tokenizer.decode(answer_ids, skip_special_tokens=True)
                done, _ = split_sentences(answer[said_chars:])
                for piece in done:
                    said_chars = answer.index(piece, said_chars) + len(piece)
                    pieces.append((piece, 0))
            if sentence_mode:
                while pieces:
                    if first_audio:
                        emit(OutputChunk(marks=("first_sentence",), text=pieces[0][0] or None))
                    say(*pieces.pop(0))
        if tokenizer is None:
            if len(answer_ids) > used_tokens:
                pieces.append(("", len(answer_ids) - used_tokens))
        else:
            rest = answer[said_chars:].strip()
            if rest:
                pieces.append((rest, 0))
        emit(OutputChunk(marks=("llm_final",), text=answer or None))
        if stop.is_set():
            return
        if sentence_mode:
            for piece in pieces:
                say(*piece)
            return
        waves = [self.speak(*piece) for piece in pieces if not stop.is_set()]
        audio_out = np.concatenate(waves) if waves else np.zeros(0, np.float32)
        emit(OutputChunk(audio=audio_out, marks=("tts_first_audio",), text=answer or None))


def _stop_on(event: threading.Event) -> Any:
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            return torch.full(
                (input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device
            )

    return StoppingCriteriaList([_Stop()])


def _model_type(path: Path) -> str | None:
    try:
        return json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return None


def _tts_files(path: str | None) -> _hf.ModelFiles:
    if path and _model_type(Path(path).expanduser()) == "vits":
        return _hf.ModelFiles(
            "cascade",
            "VITS TTS",
            "tts",
            "mms-tts-tel",
            "facebook/mms-tts-tel",
            needs=("vocab.json", "tokenizer_config.json"),
            describe="config.json, model.safetensors, vocab.json, tokenizer_config.json",
        )
    return FILES["tts"]


def _speaker_vector(path: str | None) -> np.ndarray:
    """The SpeechT5 speaker x-vector: from ``path`` (.npy, 512 floats) or a fixed, reproducible unit vector."""
    if path is None:
        vec = np.random.default_rng(20240).standard_normal(SPEAKER_DIM).astype(np.float32)
        return vec / np.linalg.norm(vec)
    try:
        vec = np.load(Path(path).expanduser()).astype(np.float32).reshape(-1)
    except (OSError, ValueError) as exc:
        raise OptionError(f"cascade: cannot read speaker x-vector {path!r}: {exc}") from None
    if vec.size != SPEAKER_DIM or not np.isfinite(vec).all():
        raise OptionError(
            f"cascade: speaker x-vector {path!r} must hold {SPEAKER_DIM} finite floats, got {vec.size}"
        )
    return vec


def _load_whisper(path: Path, device: Any, dtype: Any) -> dict:
    from transformers import AutoTokenizer, WhisperFeatureExtractor, WhisperForConditionalGeneration

    return {
        "model": _hf.load_pretrained(WhisperForConditionalGeneration, path, device, dtype),
        "features": WhisperFeatureExtractor.from_pretrained(str(path), local_files_only=True),
        "tokenizer": AutoTokenizer.from_pretrained(str(path), local_files_only=True),
    }


def _load_llm(path: Path, device: Any, dtype: Any) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return {
        "model": _hf.load_pretrained(AutoModelForCausalLM, path, device, dtype),
        "tokenizer": AutoTokenizer.from_pretrained(str(path), local_files_only=True),
    }


def _load_speecht5(tts: Path, vocoder: Path, device: Any, dtype: Any) -> dict:
    from transformers import SpeechT5ForTextToSpeech, SpeechT5HifiGan, SpeechT5Tokenizer

    voc = _hf.load_pretrained(SpeechT5HifiGan, vocoder, device, dtype)
    return {
        "kind": "speecht5",
        "model": _hf.load_pretrained(SpeechT5ForTextToSpeech, tts, device, dtype),
        "vocoder": voc,
        "tokenizer": SpeechT5Tokenizer.from_pretrained(str(tts), local_files_only=True),
        "sample_rate": int(voc.config.sampling_rate),
    }


def _load_vits(path: Path, device: Any, dtype: Any) -> dict:
    from transformers import AutoTokenizer, VitsModel

    model = _hf.load_pretrained(VitsModel, path, device, dtype)
    return {
        "kind": "vits",
        "model": model,
        "tokenizer": AutoTokenizer.from_pretrained(str(path), local_files_only=True),
        "sample_rate": int(model.config.sampling_rate),
    }


def _random_whisper(arch: str, device: Any, dtype: Any) -> dict:
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    config, generation = _presets.whisper(arch)
    model = _hf.random_model(WhisperForConditionalGeneration, config, device, dtype)
    model.generation_config = generation
    return {
        "model": model,
        "features": WhisperFeatureExtractor(feature_size=config.num_mel_bins),
        "tokenizer": None,
    }


def _random_llm(arch: str, device: Any, dtype: Any) -> dict:
    from transformers import LlamaForCausalLM

    return {
        "model": _hf.random_model(LlamaForCausalLM, _presets.llama(arch), device, dtype),
        "tokenizer": None,
    }


def _random_speecht5(arch: str, device: Any, dtype: Any) -> dict:
    from transformers import SpeechT5ForTextToSpeech, SpeechT5HifiGan

    config, vocoder_config = _presets.speecht5(arch)
    return {
        "kind": "speecht5",
        "model": _hf.random_model(SpeechT5ForTextToSpeech, config, device, dtype),
        "vocoder": _hf.random_model(SpeechT5HifiGan, vocoder_config, device, dtype),
        "tokenizer": None,
        "sample_rate": int(vocoder_config.sampling_rate),
    }


@hookimpl
def register_backends(register):
    register(CascadeBackend)
