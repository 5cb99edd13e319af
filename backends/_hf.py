"""Shared plumbing for the transformers-based baselines: finding local weights, devices, dtypes, a model cache.

Nothing here downloads anything. A model folder is found, in this order:

1. the backend option that names it (``asr=/path``, ``llm=/path``, ...);
2. ``$S2S_BENCH_MODELS/<folder>`` (one sub-folder per model, e.g. ``$S2S_BENCH_MODELS/whisper-small``);
3. the Hugging Face cache (``huggingface_hub``'s, with ``HF_HUB_OFFLINE=1`` forced so it never reaches the network).

When none has the files, :func:`resolve_model_dir` raises a :class:`BackendError` that names the files expected,
the places looked at, and the repository to fetch on another machine.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.backend import BackendError, OptionError

MODELS_ENV = "S2S_BENCH_MODELS"
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def require(module: str, extra: str) -> Any:
    """Import ``module`` or raise ``ModuleNotFoundError`` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"`{module}` is needed by this backend but is not installed; "
            f"install it with: pip install 's2s-bench[{extra}]' torch==<your torch version>"
        ) from exc


@dataclass(frozen=True)
class ModelFiles:
    """What one model of a backend needs on disk.

    ``folder`` is its sub-folder under ``$S2S_BENCH_MODELS``; ``repo`` the Hugging Face repository to download
    elsewhere; ``needs`` extra files that must be present next to ``config.json`` and the weights; ``describe`` the
    human list of files for error messages.
    """

    backend: str
    role: str
    option: str
    folder: str
    repo: str
    needs: tuple[str, ...] = ()
    describe: str = "config.json, model.safetensors"
    weights: tuple[str, ...] = WEIGHT_FILES
    random_ok: bool = True  # the backend offers weights=random

    def missing_in(self, path: Path) -> list[str]:
        """Files this model needs that ``path`` lacks (empty when complete)."""
        if not path.is_dir():
            return [f"{path} (not a folder)"]
        missing = [name for name in ("config.json", *self.needs) if not (path / name).exists()]
        if self.weights and not any((path / name).exists() for name in self.weights):
            missing.append(" or ".join(self.weights[:2]))
        return missing


def _hf_cache_dir(repo: str) -> Path | None:
    """The newest snapshot of ``repo`` in the local Hugging Face cache, or None. Never touches the network."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from huggingface_hub import snapshot_download
    except ModuleNotFoundError:
        return None
    try:
        return Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        return None


def candidate_dirs(files: ModelFiles, explicit: str | None) -> list[tuple[str, Path]]:
    """Where to look for a model, as (how it was found, path), in priority order."""
    if explicit:
        return [(f"option {files.option}=", Path(explicit).expanduser())]
    found: list[tuple[str, Path]] = []
    root = os.environ.get(MODELS_ENV)
    if root:
        found.append((f"${MODELS_ENV}", Path(root).expanduser() / files.folder))
    cached = _hf_cache_dir(files.repo)
    if cached is not None:
        found.append(("the Hugging Face cache", cached))
    return found


def resolve_model_dir(files: ModelFiles, explicit: str | None) -> Path:
    """The folder holding ``files``' model, or a :class:`BackendError` saying what is expected where."""
    places = candidate_dirs(files, explicit)
    problems = []
    for how, path in places:
        if not path.is_dir():
            problems.append(f"{path} (from {how}) is not a folder")
            continue
        missing = files.missing_in(path)
        if not missing:
            return path
        problems.append(f"{path} (from {how}) lacks {', '.join(missing)}")
    where = (
        "; ".join(problems)
        if problems
        else f"no {files.option}= option, ${MODELS_ENV} unset, not in the HF cache"
    )
    raise BackendError(
        f"{files.backend}: no {files.role} weights found: {where}. Expected {files.describe}. "
        f"Download {files.repo} on another machine and pass {files.option}=/path "
        f"(or put it in ${MODELS_ENV}/{files.folder})"
        + ("; or run with weights=random to measure latency only." if files.random_ok else ".")
    )


def weights_status(all_files: list[ModelFiles]) -> tuple[bool, str]:
    """(all present?, detail) for ``s2s-bench backends``: checks the default places of every model."""
    lacking = []
    for files in all_files:
        if not any(not files.missing_in(path) for _, path in candidate_dirs(files, None)):
            lacking.append(f"{files.role} ({files.repo} -> ${MODELS_ENV}/{files.folder} or {files.option}=)")
    if lacking:
        hint = "; weights=random measures latency only" if all(f.random_ok for f in all_files) else ""
        return False, "missing: " + "; ".join(lacking) + hint
    return True, "all weights found"


def torch_device(backend: str, name: str) -> Any:
    """``auto`` -> cuda when available, else cpu; anything else must be a valid torch device."""
    torch = require("torch", "cascade")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise OptionError(
            f"Expected option `device` of backend `{backend}` to be auto, cpu, cuda[:N] but got {name!r}"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"backend `{backend}`: device={name} but torch sees no CUDA device; use device=cpu")
    return device


def torch_dtype(name: str) -> Any:
    """The torch dtype of a resolved name (float32, bfloat16, float16); ``auto`` is resolved by :mod:`._dtype`."""
    torch = require("torch", "cascade")
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def apply_threads(threads: int) -> None:
    """Set torch's intra-op thread count to ``threads`` (0: leave it as it is).

    The count is process-wide, so a backend that set it only at load would set it for every backend of the run (the
    last one loaded wins: ``custom`` sets 1). Backends call this at load and again at the start of every turn, so in
    a run of several backends, measured one block after another, each turn runs with its own backend's count.
    """
    if threads:
        torch = require("torch", "cascade")
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


_cache: dict[tuple, Any] = {}
_cache_lock = threading.Lock()


def shared(key: tuple, build: Callable[[], Any]) -> Any:
    """One instance per ``key`` per process, so two backends (e.g. ``cascade`` in two modes) share their weights."""
    with _cache_lock:
        if key not in _cache:
            _cache[key] = build()
        return _cache[key]


def clear_shared() -> None:
    """Drop every cached model (tests; end of a run)."""
    with _cache_lock:
        _cache.clear()


def random_model(cls: Any, config: Any, device: Any, dtype: Any, seed: int = 0) -> Any:
    """``cls(config)`` with reproducible random weights, in eval mode on ``device``/``dtype`` (latency only)."""
    torch = require("torch", "cascade")
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in the target dtype: half the peak memory of float32-then-convert
    try:
        model = cls(config)
    finally:
        torch.set_default_dtype(previous)
    return model.to(device=device, dtype=dtype).eval()


def load_pretrained(cls: Any, path: Path, device: Any, dtype: Any) -> Any:
    """``cls.from_pretrained`` from a local folder only (``local_files_only``), in eval mode on ``device``."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model = cls.from_pretrained(str(path), dtype=dtype, local_files_only=True)
    except TypeError:  # transformers < 4.56 spells it torch_dtype
        model = cls.from_pretrained(str(path), torch_dtype=dtype, local_files_only=True)
    return model.to(device).eval()


def inference_mode(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` wrapped to run under ``torch.inference_mode()`` (for ``generate`` started in another thread)."""

    def run(**kwargs: Any) -> Any:
        import torch

        with torch.inference_mode():
            return fn(**kwargs)

    return run
