"""``speechgpt``: SpeechGPT's pipeline rebuilt on transformers, without fairseq.

HuBERT features -> k-means units (centroids from a ``.npy``) -> a Llama model whose vocabulary holds the units as
tokens ``<0>`` ... ``<K-1>`` between ``<sosp>`` and ``<eosp>`` (optionally with a LoRA adapter, through ``peft``)
-> a unit HiFi-GAN vocoder in plain torch (:mod:`backends.speechgpt.vocoder`).

Be clear about what this is: the released SpeechGPT (fnlp/SpeechGPT-7B-cm, mHuBERT layer 11, 1000 units) is
**English-only**; on Telugu input it produces English-trained units at best. It is here as an architecture baseline
and as the target of the LoRA recipe in :mod:`backends.speechgpt.finetune`, which adapts a unit LM to Telugu unit
sequences. Stage marks: ``units_ready`` (input units extracted), ``llm_first_token``, ``llm_final``,
``tts_first_audio``.
"""

from __future__ import annotations

import re
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

from .. import _dtype, _hf
from .._streaming import TokenQueue, generate_in_thread

DEFAULT_PROMPT = "[Human]: This is input: {units}<eoh>. [SpeechGPT]: "
"""SpeechGPT's turn format, with the user's units in place of ``{units}``."""
UNIT_TOKEN = re.compile(r"<(\d+)>")

FILES = {
    "hubert": _hf.ModelFiles(
        "speechgpt",
        "HuBERT",
        "hubert",
        "mhubert-base",
        "facebook/hubert-base-ls960 (or mHuBERT converted)",
        needs=("km.npy",),
        random_ok=False,
        describe="config.json, model.safetensors and km.npy (the k-means centroids, K x 768; or pass centroids=)",
    ),
    "llm": _hf.ModelFiles(
        "speechgpt",
        "SpeechGPT LLM",
        "llm",
        "speechgpt-7b-cm",
        "fnlp/SpeechGPT-7B-cm",
        needs=("tokenizer_config.json",),
        random_ok=False,
        describe="config.json, model.safetensors, tokenizer files with unit tokens <0>..<K-1>, <sosp>, <eosp>",
    ),
    "vocoder": _hf.ModelFiles(
        "speechgpt",
        "unit HiFi-GAN vocoder",
        "vocoder",
        "speechgpt-unit-vocoder",
        "SpeechGPT's unit vocoder (fairseq mhubert_base_vp_en_es_fr_it3_L11_km1000_lj)",
        weights=("model.safetensors", "g_00500000"),
        random_ok=False,
        describe="config.json and model.safetensors (or fairseq's g_* generator checkpoint)",
    ),
}


def units_to_text(units: list[int]) -> str:
    """SpeechGPT's spelling of a unit sequence: ``<sosp><12><7>...<eosp>``."""
    return "<sosp>" + "".join(f"<{u}>" for u in units) + "<eosp>"


def text_to_units(text: str, num_units: int) -> list[int]:
    """Unit ids in a generated text, after its last ``<sosp>`` and before ``<eosp>``; ids >= num_units dropped."""
    start = text.rfind("<sosp>")
    body = text[start + len("<sosp>") :] if start >= 0 else text
    body = body.split("<eosp>", 1)[0]
    return [int(m) for m in UNIT_TOKEN.findall(body) if int(m) < num_units]


class SpeechGPTBackend(OfflineBackend):
    name = "speechgpt"
    description = (
        "HuBERT units -> Llama unit LM (+LoRA) -> unit HiFi-GAN (released SpeechGPT is English-only)"
    )
    output_sample_rate = 16000
    options = {
        "hubert": Option(str, None, "HubertModel folder (with km.npy unless centroids= is given)"),
        "centroids": Option(
            str, None, "k-means centroids .npy, K x hidden (default: km.npy in the HuBERT folder)"
        ),
        "hubert_layer": Option(int, 11, "HuBERT layer whose features are clustered", min=1),
        "llm": Option(str, None, "unit LM folder (Llama with unit tokens)"),
        "lora": Option(str, None, "a peft LoRA adapter folder to apply to the LLM"),
        "vocoder": Option(str, None, "unit vocoder folder (config.json + model.safetensors)"),
        "prompt": Option(str, DEFAULT_PROMPT, "turn template; {units} is replaced by the user's units"),
        "device": Option(str, "auto", "auto, cpu, cuda, cuda:N"),
        "dtype": Option(str, "auto", _dtype.DTYPE_HELP + " (HuBERT and LLM)", _dtype.DTYPE_CHOICES),
        "max_new_tokens": Option(
            int, 256, "generated tokens at most (units run at up to 50 per second)", min=1
        ),
    }

    def __init__(self, **opts: Any) -> None:
        super().__init__(**opts)
        self.parts: dict[str, Any] = {}
        self.dtype_choice: _dtype.DtypeChoice | None = None

    @classmethod
    def weights_status(cls) -> tuple[bool, str]:
        return _hf.weights_status(list(FILES.values()))

    def load(self) -> None:
        _hf.require("transformers", "cascade")
        o = self.opts
        device = _hf.torch_device(self.name, o["device"])
        self.dtype_choice = _dtype.announce(_dtype.resolve_dtype(self.name, o["dtype"], device))
        dtype = _hf.torch_dtype(self.dtype_choice.resolved)
        hubert_files = FILES["hubert"]
        if o["centroids"]:
            hubert_files = _hf.ModelFiles(**{**hubert_files.__dict__, "needs": ()})
        hubert_dir = _hf.resolve_model_dir(hubert_files, o["hubert"])
        llm_dir = _hf.resolve_model_dir(FILES["llm"], o["llm"])
        vocoder_dir = _hf.resolve_model_dir(FILES["vocoder"], o["vocoder"])
        centroids_path = Path(o["centroids"]).expanduser() if o["centroids"] else hubert_dir / "km.npy"
        try:
            centroids = np.load(centroids_path)
        except (OSError, ValueError) as exc:
            raise BackendError(f"speechgpt: cannot read k-means centroids {centroids_path}: {exc}") from None
        key = (str(device), self.dtype_choice.resolved)
        from transformers import HubertModel

        from .units import UnitExtractor
        from .vocoder import load_unit_vocoder

        hubert = _hf.shared(
            ("hubert", str(hubert_dir), *key),
            lambda: _hf.load_pretrained(HubertModel, hubert_dir, device, dtype),
        )
        try:
            self.parts["units"] = UnitExtractor(hubert, centroids, o["hubert_layer"])
        except ValueError as exc:
            raise OptionError(f"speechgpt: {exc} (hubert={hubert_dir}, centroids={centroids_path})") from None
        self.parts["llm"] = _hf.shared(
            ("llm", str(llm_dir), o["lora"], *key), lambda: _load_llm(llm_dir, o["lora"], device, dtype)
        )
        self.parts["vocoder"] = _hf.shared(
            ("vocoder", str(vocoder_dir), str(device)), lambda: load_unit_vocoder(vocoder_dir, device)
        )
        self.output_sample_rate = self.parts["vocoder"].config.sampling_rate

    def open_session(self) -> Session:
        if not self.parts:
            self.load()
        return super().open_session()

    def shutdown(self) -> None:
        self.parts = {}

    def describe(self) -> dict[str, Any]:
        return _dtype.describe_dtype(super().describe(), self.dtype_choice)

    def respond(self, audio: np.ndarray, emit: Callable[[OutputChunk], None], stop: threading.Event) -> None:
        import torch

        if audio.size == 0:
            raise BackendError("speechgpt: the input utterance is empty (0 samples)")
        units_in = self.parts["units"].units(audio)
        emit(OutputChunk(marks=("units_ready",), text=units_to_text(units_in)))
        model, tokenizer = self.parts["llm"]
        prompt = self.opts["prompt"].replace("{units}", units_to_text(units_in))
        ids = tokenizer(prompt, return_tensors="pt").input_ids.to(model.device)
        streamer = TokenQueue(on_first=lambda: emit(OutputChunk(marks=("llm_first_token",))))
        generate_in_thread(
            _hf.inference_mode(model.generate),
            streamer,
            input_ids=ids,
            attention_mask=ids.new_ones(ids.shape),
            max_new_tokens=self.opts["max_new_tokens"],
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else tokenizer.eos_token_id,
        )
        generated = list(streamer)
        text = tokenizer.decode(generated, skip_special_tokens=False)
        vocoder = self.parts["vocoder"]
        units_out = text_to_units(text, vocoder.config.num_embeddings)
        emit(OutputChunk(marks=("llm_final",), text=text))
        if not units_out:
            raise BackendError(
                f"speechgpt: the LLM produced no unit tokens <0>..<K-1>; it said {text[:200]!r}"
            )
        device = next(vocoder.parameters()).device
        with torch.inference_mode():
            wave = vocoder(torch.tensor([units_out], device=device))[0]
        emit(
            OutputChunk(
                audio=wave.float().cpu().numpy(), marks=("tts_first_audio",), text=units_to_text(units_out)
            )
        )


def _load_llm(path: Path, lora: str | None, device: Any, dtype: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = _hf.load_pretrained(AutoModelForCausalLM, path, device, dtype)
    if lora:
        peft = _hf.require("peft", "cascade")
        adapter = Path(lora).expanduser()
        if not (adapter / "adapter_config.json").exists():
            raise BackendError(f"speechgpt: no LoRA adapter at {adapter} (expected adapter_config.json)")
        model = peft.PeftModel.from_pretrained(model, str(adapter)).to(device).eval()
    return model, AutoTokenizer.from_pretrained(str(path), local_files_only=True)


@hookimpl
def register_backends(register):
    register(SpeechGPTBackend)
