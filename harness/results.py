"""Run folders: run.json (metadata + summaries), events.jsonl, outputs/ (see docs/run-format.md)."""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from importlib import metadata
from pathlib import Path

import numpy as np

from .events import read_events
from .storage import StorageError, json_safe, write_json_atomic, write_json_in_place  # noqa: F401

SCHEMA = "s2s-bench.run/1"
_VERSION_PACKAGES = (
    "s2s-bench",
    "numpy",
    "torch",
    "transformers",
    "onnxruntime",
    "soundfile",
    "soxr",
    "pluggy",
)


def slug(key: str, max_len: int = 96) -> str:
    """A backend key as a folder name; long keys keep their start plus a hash, so names stay short and unique."""
    name = re.sub(r"[^A-Za-z0-9._=-]", "_", key)
    if len(name) <= max_len:
        return name
    import hashlib

    return name[: max_len - 13] + "-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def machine_info() -> dict:
    """Where a run ran: host, OS, CPU (model, count, the flags that decide native bf16/fp16), memory, GPU.

    ``cpu_flags`` maps each flag of :data:`harness.cpu_features.X86_FLAGS` (or ``ARM_FLAGS``) to True / False, or
    None when it could not be read (``cpu_flags_source`` says from where); ``torch_cpu`` is torch's own view of the
    CPU, present only when torch was already imported (this never imports torch).
    """
    from .cpu_features import cpu_features

    features = cpu_features()
    cpuinfo = _read_cpuinfo()
    info = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(cpuinfo),
        "cpu_id": _cpu_id(cpuinfo),
        "cpu_count": os.cpu_count(),
        "cpu_flags": features["flags"],
        "cpu_flags_source": features["source"],
        "python": platform.python_version(),
        "gpu": None,
    }
    if features["torch"] is not None:
        info["torch_cpu"] = features["torch"]
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gb"] = round(pages * page_size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    info["gpu"] = _nvidia_gpu_model()
    import sys

    if info["gpu"] is None and "torch" in sys.modules:  # never pay torch's import for this
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _nvidia_gpu_model(root: Path = Path("/proc/driver/nvidia/gpus")) -> str | None:
    """The first NVIDIA GPU's model as the driver names it (``NVIDIA H200``), without importing torch: the runner
    records the machine before any backend loads, and a machine class must not depend on what was imported."""
    try:
        for info in sorted(root.glob("*/information")):
            for line in info.read_text(errors="replace").splitlines():
                if line.startswith("Model:"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return None


def machine_class(info: dict) -> tuple:
    """What must match for two runs' timings to be comparable: CPU model and generation, core count and GPU.

    A virtual machine's CPU is often named only "AMD EPYC", for a Zen 1 and a Zen 4 alike (this project has run on both),
    so the x86 family/model (``cpu_id``) is part of the class; a run recorded before it was (``None``) is therefore
    never the same class as one that has it, which errs on the side of "not comparable".
    """
    return (info.get("cpu"), info.get("cpu_id"), info.get("cpu_count"), info.get("gpu"))


def _read_cpuinfo() -> str | None:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return None


def _cpu_id(cpuinfo: str | None) -> str | None:
    """The x86 CPU generation as ``/proc/cpuinfo`` gives it (``family 25 model 17``: Zen 4), or None elsewhere."""
    fields: dict[str, str] = {}
    for line in (cpuinfo or "").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("vendor_id", "cpu family", "model") and key not in fields:
            fields[key] = value.strip()
        if not line.strip() and fields:  # the first processor's block is enough
            break
    if "cpu family" not in fields or "model" not in fields:
        return None
    vendor = fields.get("vendor_id")
    return f"{vendor + ' ' if vendor else ''}family {fields['cpu family']} model {fields['model']}"


def _cpu_model(cpuinfo: str | None) -> str:
    for line in (cpuinfo or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def package_versions() -> dict:
    out = {}
    for name in _VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_info(path: Path | None = None) -> dict:
    cwd = str(path or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Run:
    """A run folder, read back."""

    path: Path

    @cached_property
    def meta(self) -> dict:
        f = self.path / "run.json"
        if not f.exists():
            raise FileNotFoundError(f"{self.path} is not a run folder (no run.json)")
        return json.loads(f.read_text(encoding="utf-8"))

    @cached_property
    def events(self) -> list[dict]:
        return read_events(self.path / "events.jsonl")

    @property
    def summary(self) -> dict:
        return self.meta.get("summary", {})

    @property
    def backend_keys(self) -> list[str]:
        return [b["key"] for b in self.meta.get("backends", [])]

    def utterance_ids(self, backend_key: str) -> list[str]:
        seen = []
        for ev in self.events:
            if ev.get("e") == "utt_end" and ev["b"] == backend_key and ev["u"] not in seen:
                seen.append(ev["u"])
        return seen

    def output_path(self, backend_key: str, utt_id: str) -> Path:
        return self.path / "outputs" / slug(backend_key) / f"{utt_id}.wav"

    def output_audio(self, backend_key: str, utt_id: str) -> tuple[np.ndarray, int]:
        from .audio import read_audio

        return read_audio(self.output_path(backend_key, utt_id))


def load_run(run_dir: str | Path) -> Run:
    run = Run(Path(run_dir))
    run.meta  # noqa: B018 - fail early on a folder that is not a run
    return run
