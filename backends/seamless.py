"""``seamless``: Seamless M4T v2 speech-to-speech translation into Telugu, through transformers.

``SeamlessM4Tv2ForSpeechToSpeech.generate`` runs two passes: an autoregressive text pass (speech encoder + text
decoder, target language ``tgt_lang``), then a non-autoregressive text-to-unit model and a unit HiFi-GAN vocoder
(speaker ``speaker_id``). The text pass is streamed token by token, so the backend emits ``text_first_token`` and
``text_final`` the moment they happen; the speech pass is one call, so the audio arrives in one chunk with
``tts_first_audio``. Seamless translates: it answers the user with the user's own words in Telugu, not a reply.

``impl=seamless_communication`` uses Meta's own ``seamless_communication`` package (its ``Translator``) when it is
importable; it is not on PyPI (install it from its GitHub repository), and it gives no text mark.

``weights=random`` builds the full-size ``seamless-m4t-v2-large`` architecture with random weights and a fixed text
length (``max_new_tokens``): latency only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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
from ._streaming import TokenQueue

FILES = _hf.ModelFiles(
    "seamless", "Seamless M4T v2", "path", "seamless-m4t-v2-large", "facebook/seamless-m4t-v2-large",
    needs=("generation_config.json", "preprocessor_config.json"),
    describe="config.json, model.safetensors (or its shards + index), generation_config.json, preprocessor_config.json",
)  # fmt: skip


class SeamlessBackend(OfflineBackend):
    name = "seamless"
    description = (
        "Seamless M4T v2 speech-to-speech translation into Telugu (text pass, then units -> vocoder)"
    )
    output_sample_rate = 16000
    options = {
        "weights": Option(
            str,
            "local",
            "local: load from path; random: full-size architecture, latency only",
            ("local", "random"),
        ),
        "path": Option(
            str, None, "model folder (weights=random: an architecture, default seamless-m4t-v2-large)"
        ),
        "impl": Option(
            str,
            "transformers",
            "transformers, or Meta's seamless_communication if installed",
            ("transformers", "seamless_communication"),
        ),
        "tgt_lang": Option(
            str, "tel", "target language code (speech output needs one of the 36 speech languages)"
        ),
        "speaker_id": Option(int, 0, "vocoder speaker id (0..199)", min=0),
        "device": Option(str, "auto", "auto, cpu, cuda, cuda:N"),
        "dtype": Option(str, "auto", _dtype.DTYPE_HELP, _dtype.DTYPE_CHOICES),
        "max_new_tokens": Option(int, 64, "text tokens at most (weights=random: exactly)", min=1),
        "threads": Option(
            int,
            0,
            "torch CPU threads, set at load and at each turn (0 = leave as is: give it beside custom)",
            min=0,
        ),
    }

    def __init__(self, **opts: Any) -> None:
        super().__init__(**opts)
        self.model: dict[str, Any] = {}
        self.dtype_choice: _dtype.DtypeChoice | None = None

    @classmethod
    def weights_status(cls) -> tuple[bool, str]:
        return _hf.weights_status([FILES])

    @property
    def latency_only(self) -> bool:
        return self.opts["weights"] == "random"

    def load(self) -> None:
        o = self.opts
        _hf.require("torch", "seamless")
        _hf.apply_threads(o["threads"])
        device = _hf.torch_device(self.name, o["device"])
        self.dtype_choice = _dtype.announce(_dtype.resolve_dtype(self.name, o["dtype"], device))
        dtype = _hf.torch_dtype(self.dtype_choice.resolved)
        if o["impl"] == "seamless_communication":
            self.model = _hf.shared(
                ("seamless_communication", o["path"], str(device)), lambda: _load_meta(o, device, dtype)
            )
            return
        _hf.require("transformers", "seamless")
        if o["weights"] == "random":
            arch = o["path"] or "seamless-m4t-v2-large"
            if arch not in _presets.architectures("seamless"):
                raise OptionError(
                    f"Expected option `path` of backend `seamless` with weights=random to be one of "
                    f"{', '.join(_presets.architectures('seamless'))} but got {arch!r}"
                )
            self.model = _hf.shared(
                ("random", arch, str(device), self.dtype_choice.resolved),
                lambda: _random(arch, device, dtype),
            )
        else:
            path = _hf.resolve_model_dir(FILES, o["path"])
            self.model = _hf.shared(
                ("local", str(path), str(device), self.dtype_choice.resolved),
                lambda: _load(path, device, dtype),
            )
        model = self.model["model"]
        langs = getattr(model.generation_config, "vocoder_lang_code_to_id", None) or {}
        if o["tgt_lang"] not in langs:
            raise OptionError(
                f"Expected option `tgt_lang` of backend `seamless` to be a speech output language of this model "
                f"({', '.join(sorted(langs)) or 'none listed'}) but got {o['tgt_lang']!r}"
            )
        if o["speaker_id"] >= model.config.vocoder_num_spkrs:
            raise OptionError(
                f"Expected option `speaker_id` of backend `seamless` to be < {model.config.vocoder_num_spkrs} "
                f"but got {o['speaker_id']}"
            )
        self.output_sample_rate = int(model.config.sampling_rate)

    def open_session(self) -> Session:
        if not self.model:
            self.load()
        return super().open_session()

    def shutdown(self) -> None:
        self.model = {}

    def describe(self) -> dict[str, Any]:
        return _dtype.describe_dtype(super().describe(), self.dtype_choice)

    def respond(self, audio: np.ndarray, emit: Callable[[OutputChunk], None], stop: threading.Event) -> None:
        if audio.size == 0:
            raise BackendError("seamless: the input utterance is empty (0 samples)")
        _hf.apply_threads(self.opts["threads"])  # process-wide: another backend's turn may have changed it
        if self.opts["impl"] == "seamless_communication":
            return _respond_meta(self, audio, emit)
        import torch

        model = self.model["model"]
        inputs = self.model["features"](audio, sampling_rate=16000, return_tensors="pt")
        n = self.opts["max_new_tokens"]
        fixed = {"text_min_new_tokens": n} if self.latency_only else {}
        streamer = TokenQueue(
            on_first=lambda: emit(OutputChunk(marks=("text_first_token",))),
            on_end=lambda: emit(OutputChunk(marks=("text_final",))),
        )
        with torch.inference_mode():
            out = model.generate(
                input_features=inputs.input_features.to(model.device, model.dtype),
                attention_mask=inputs.attention_mask.to(model.device),
                tgt_lang=self.opts["tgt_lang"],
                speaker_id=self.opts["speaker_id"],
                return_intermediate_token_ids=True,
                text_max_new_tokens=n,
                text_num_beams=1,
                text_do_sample=False,
                text_streamer=streamer,
                **fixed,
            )
        lengths = out.waveform_lengths
        length = int(lengths.reshape(-1)[0]) if lengths is not None else out.waveform.shape[-1]
        wave = out.waveform[0, :length].float().cpu().numpy()
        emit(OutputChunk(audio=wave, marks=("tts_first_audio",), text=self.decode(out.sequences[0].tolist())))

    def decode(self, ids: list[int]) -> str | None:
        """The text pass's output, from the generation config's ``id_to_text`` (no tokenizer files needed)."""
        model = self.model["model"]
        if self.latency_only:
            return None
        table = getattr(model.generation_config, "id_to_text", None) or {}
        special = {model.generation_config.eos_token_id, model.generation_config.pad_token_id}
        pieces = [
            table.get(str(i), "") for i in ids[2:] if i not in special
        ]  # drop EOS start + language token
        return "".join(pieces).replace("\u2581", " ").strip()


def _load(path: Any, device: Any, dtype: Any) -> dict:
    from transformers import SeamlessM4TFeatureExtractor, SeamlessM4Tv2ForSpeechToSpeech

    return {
        "model": _hf.load_pretrained(SeamlessM4Tv2ForSpeechToSpeech, path, device, dtype),
        "features": SeamlessM4TFeatureExtractor.from_pretrained(str(path), local_files_only=True),
    }


def _random(arch: str, device: Any, dtype: Any) -> dict:
    from transformers import SeamlessM4TFeatureExtractor, SeamlessM4Tv2ForSpeechToSpeech

    config, generation = _presets.seamless(arch)
    model = _hf.random_model(SeamlessM4Tv2ForSpeechToSpeech, config, device, dtype)
    model.generation_config = generation
    never_predict_control_units(model)
    return {"model": model, "features": SeamlessM4TFeatureExtractor()}


def never_predict_control_units(model: Any) -> None:
    """Zero the t2u output rows of the control symbols (bos, pad, eos, unk) of a random-weight model.

    A trained model never predicts them inside an utterance; random weights would, and ``generate`` then indexes the
    vocoder with ``id - vocoder_offset`` < 0. With these rows zeroed their logit is 0 and some unit always wins.
    """
    import torch

    with torch.no_grad():
        model.t2u_model.lm_head.weight[: model.config.vocoder_offset].zero_()


def _load_meta(opts: dict, device: Any, dtype: Any) -> dict:
    try:
        from seamless_communication.inference import Translator
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "seamless: impl=seamless_communication needs Meta's `seamless_communication` package, which is not on "
            "PyPI: install it from https://github.com/facebookresearch/seamless_communication, or use "
            "impl=transformers"
        ) from None
    if opts["weights"] == "random":
        raise OptionError("seamless: weights=random works only with impl=transformers")
    name = opts["path"] or "seamlessM4T_v2_large"
    translator = Translator(name, vocoder_name_or_card="vocoder_v2", device=device, dtype=dtype)
    return {"meta": translator}


def _respond_meta(backend: SeamlessBackend, audio: np.ndarray, emit: Callable[[OutputChunk], None]) -> None:
    import torch

    translator = backend.model["meta"]
    with torch.inference_mode():
        text, speech = translator.predict(
            torch.from_numpy(audio)[None], "s2st", backend.opts["tgt_lang"], src_lang=None,
            spkr=backend.opts["speaker_id"],
        )  # fmt: skip
    wave = speech.audio_wavs[0].reshape(-1).float().cpu().numpy()
    emit(OutputChunk(audio=wave, marks=("tts_first_audio",), text=str(text[0])))


@hookimpl
def register_backends(register):
    register(SeamlessBackend)
