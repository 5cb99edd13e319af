"""ASR judges: transcribe a system's output so WER/CER/chrF can be computed against the expected text.

A judge is any object with ``info`` (a dict recorded in the results: what model, which revision, how it decodes)
and ``transcribe(audio, sr) -> str``. Judges are registered through the ``register_asr_judges`` hook and chosen
with a spec ``NAME[:key=value,...]``, e.g. ``whisper:path=/models/whisper-small``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..audio import resample

CASCADE_EXTRA = "pip install 's2s-bench[cascade]' (transformers; install torch==2.13.0 first)"


class ASRJudge(Protocol):
    info: dict[str, Any]

    def transcribe(self, audio: np.ndarray, sr: int) -> str: ...


class JudgeError(Exception):
    """A judge cannot be created or loaded; the message says what to set or install."""


def judge_registry() -> dict[str, Any]:
    """Judge factories by name, from the ``register_asr_judges`` hook."""
    from ..plugins import load_plugins, pm

    load_plugins()
    found: dict[str, Any] = {}

    def register(name: str, factory) -> None:
        if name in found:
            raise ValueError(f"ASR judge {name!r} is registered twice")
        found[name] = factory

    pm.hook.register_asr_judges(register=register)
    return found


def create_judge(spec: str) -> ASRJudge:
    """A judge from ``NAME[:key=value,...]``; raises :class:`JudgeError` naming the known judges."""
    from ..backend import BackendSpec

    parsed = BackendSpec.parse(spec)
    registry = judge_registry()
    if parsed.name not in registry:
        raise JudgeError(f"Unknown ASR judge {parsed.name!r}; known judges: {', '.join(sorted(registry))}")
    return registry[parsed.name](**parsed.options)


class WhisperJudge:
    """Whisper through ``transformers``, from local files only (nothing is downloaded).

    Options: ``path`` (a folder holding a saved Whisper model, feature extractor and tokenizer) or ``model`` (a hub
    id already in the local Hugging Face cache); ``language`` (default ``te``: always passed explicitly, never
    detected); ``revision`` (recorded; for a cache snapshot folder it is read from the path);
    ``max_new_tokens`` (default 200); ``threads`` (torch CPU threads, default 1).

    Decoding is deterministic: greedy search (``num_beams=1``, ``do_sample=False``), task ``transcribe``.
    """

    name = "whisper"

    def __init__(
        self,
        path: str | None = None,
        model: str | None = None,
        language: str = "te",
        revision: str | None = None,
        max_new_tokens: int | str = 200,
        threads: int | str = 1,
    ) -> None:
        if not path and not model:
            raise JudgeError(
                "The whisper judge needs path=/local/whisper/folder (or model=ID already in the HF cache)"
            )
        self.source = str(Path(path).expanduser().resolve()) if path else str(model)
        if path and not Path(self.source).is_dir():
            raise JudgeError(f"whisper judge: path={path!r} is not a folder (expected a saved Whisper model)")
        self.language = language
        self.max_new_tokens = int(max_new_tokens)
        self.threads = int(threads)
        self.revision = revision or _snapshot_revision(self.source)
        self._model = None
        self._processor = None
        self.info: dict[str, Any] = {
            "judge": "whisper",
            "model": self.source,
            "revision": self.revision,
            "language": language,
            "task": "transcribe",
            "decoding": {"num_beams": 1, "do_sample": False, "max_new_tokens": self.max_new_tokens},
        }

    def load(self) -> None:
        """Load model and processor from local files (once)."""
        if self._model is not None:
            return
        try:
            import torch
            from transformers import WhisperForConditionalGeneration, WhisperProcessor
        except ModuleNotFoundError as exc:
            raise JudgeError(f"whisper judge needs '{exc.name}': {CASCADE_EXTRA}") from None
        torch.set_num_threads(self.threads)
        kw: dict[str, Any] = {"local_files_only": True}
        if self.revision and not Path(self.source).is_dir():
            kw["revision"] = self.revision
        try:
            self._processor = WhisperProcessor.from_pretrained(self.source, **kw)
            self._model = WhisperForConditionalGeneration.from_pretrained(self.source, **kw).eval()
        except OSError as exc:
            raise JudgeError(
                f"whisper judge: cannot load a Whisper model from {self.source!r} ({exc})"
            ) from None
        cfg = self._model.config
        self.info["config_sha256"] = hashlib.sha256(cfg.to_json_string().encode()).hexdigest()[:16]
        self.info["n_params"] = int(sum(p.numel() for p in self._model.parameters()))

    def transcribe(self, audio: np.ndarray, sr: int) -> str:
        """Transcript of one clip (resampled to 16 kHz; clips over 30 s use Whisper's long-form decoding)."""
        import torch

        self.load()
        x = resample(np.asarray(audio, dtype=np.float32), sr, 16000)
        long_form = x.size > 30 * 16000
        feats = self._processor.feature_extractor(
            x,
            sampling_rate=16000,
            return_tensors="pt",
            **(
                {"truncation": False, "padding": "longest", "return_attention_mask": True}
                if long_form
                else {}
            ),
        )
        kwargs = {"attention_mask": feats["attention_mask"]} if long_form else {}
        with torch.inference_mode():
            ids = self._model.generate(
                feats["input_features"],
                language=self.language,
                task="transcribe",
                num_beams=1,
                do_sample=False,
                max_new_tokens=self.max_new_tokens,
                **kwargs,
            )
        return self._processor.tokenizer.batch_decode(ids, skip_special_tokens=True)[0].strip()


def _snapshot_revision(source: str) -> str | None:
    """The commit hash of a Hugging Face cache snapshot folder (``.../snapshots/<40 hex>``), if it is one."""
    m = re.search(r"/snapshots/([0-9a-f]{40})(/|$)", source)
    return m.group(1) if m else None
