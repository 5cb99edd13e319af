"""What the CPU can do natively, for run.json's machine info and for ``dtype=auto``.

A bfloat16 or float16 matmul is fast on a CPU only where the hardware has instructions for it (AMX tiles, AVX-512
BF16/FP16; on ARM, FEAT_BF16); elsewhere torch converts to float32 and back around every operation and the model can
run several times slower than in float32. Timings from two machines are comparable only if these match, so every
run records them.

Sources, in order: ``/proc/cpuinfo`` (Linux, x86 ``flags`` and ARM ``Features`` lines), ``sysctl`` (macOS), else
torch's own CPUID checks when torch is imported (Windows: the bf16/AMX flags only), else nothing (``None``: unknown). torch's own view is added only when torch is already imported: this module
never imports torch (``s2s-bench --help`` must stay fast, and a run that never loads torch should not pay for it).
"""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

X86_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_fp16",
)
"""The x86 flags recorded, as /proc/cpuinfo spells them."""
ARM_FLAGS = ("asimd", "fphp", "sve", "bf16", "i8mm")
"""The ARM (aarch64) features recorded, as /proc/cpuinfo spells them (``bf16`` is FEAT_BF16)."""
_MACOS_X86 = {"AVX2": "avx2", "FMA": "fma", "F16C": "f16c", "AVX512F": "avx512f", "AVX512VNNI": "avx512_vnni"}
_MACOS_ARM = {
    "hw.optional.arm.FEAT_BF16": "bf16",
    "hw.optional.arm.FEAT_I8MM": "i8mm",
    "hw.optional.AdvSIMD": "asimd",
}


def parse_cpuinfo(text: str) -> tuple[str | None, dict[str, bool | None]]:
    """(model name, recorded flags) from the text of ``/proc/cpuinfo``; flags are ``None`` when no flag line."""
    model = None
    flags: set[str] | None = None
    arm = False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and flags is None:
            flags = set(value.split())
        elif key == "Features" and flags is None:
            flags, arm = set(value.split()), True
    names = ARM_FLAGS if arm else X86_FLAGS
    return model, {name: (None if flags is None else name in flags) for name in names}


def _sysctl(*names: str) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            done = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            out[name] = done.stdout.strip()
    return out


@functools.lru_cache(maxsize=1)
def _hardware() -> tuple[str | None, dict[str, bool | None], str]:
    """(model, flags, source), read once per process (the hardware does not change under a run)."""
    try:
        model, flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
        if any(v is not None for v in flags.values()):
            return model, flags, "/proc/cpuinfo"
    except OSError:
        model = None
    arm = platform.machine().lower() in ("arm64", "aarch64")
    flags = {
        name: None for name in (ARM_FLAGS if arm else X86_FLAGS)
    }  # those sysctl does not name stay unknown
    if sys.platform == "darwin":
        if arm:
            found = _sysctl(*_MACOS_ARM)
            flags.update({flag: found[name] == "1" for name, flag in _MACOS_ARM.items() if name in found})
        else:
            found = _sysctl("machdep.cpu.features", "machdep.cpu.leaf7_features")
            words = set(" ".join(found.values()).split())
            if found:
                flags.update({flag: name in words for name, flag in _MACOS_X86.items()})
        model = model or _sysctl("machdep.cpu.brand_string").get("machdep.cpu.brand_string")
        if found:
            return model, flags, "sysctl"
    return model, flags, "unknown"


_TORCH_FLAGS = {
    "avx512_bf16": "avx512_bf16",
    "amx_tile": "amx_tile",
    "amx_bf16": "amx_tile",
    "amx_fp16": "amx_fp16",
}
"""Flags torch's own checks can fill in where the OS said nothing (Windows): flag -> key of torch's view (torch
checks AMX tiles, and every AMX CPU so far has AMX-BF16 with them)."""


def torch_cpu_support() -> dict[str, Any] | None:
    """torch's own view of the CPU (its dispatch level and its bf16/AMX checks), or None if torch is not imported.

    ``native_bf16`` is torch's check for AVX-512 BF16 or AMX tiles: the instructions that make bf16 matmuls native.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    info: dict[str, Any] = {"version": getattr(torch, "__version__", None)}
    checks = {
        "capability": lambda: torch.backends.cpu.get_cpu_capability(),
        "avx512_bf16": lambda: bool(torch.cpu._is_avx512_bf16_supported()),
        "amx_tile": lambda: bool(torch.cpu._is_amx_tile_supported()),
        "amx_fp16": lambda: bool(torch.cpu._is_amx_fp16_supported()),
        "mkldnn_bf16": lambda: bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
    }
    for name, check in checks.items():
        try:
            info[name] = check()
        except Exception:  # noqa: BLE001 - private, version-dependent APIs: unknown rather than a crash
            info[name] = None
    known = [info[k] for k in ("avx512_bf16", "amx_tile") if info[k] is not None]
    info["native_bf16"] = any(known) if known else None
    return info


def cpu_features() -> dict[str, Any]:
    """The CPU's model, its recorded flags (True / False / None = unknown), where they came from, and torch's view.

    Example on a Zen 4 EPYC: ``{"model": "AMD EPYC", "flags": {"avx2": True, ..., "avx512_bf16": True,
    "amx_bf16": False, ...}, "source": "/proc/cpuinfo", "torch": {"capability": "AVX512", "native_bf16": True,
    ...}}`` (``torch`` is None when torch was not imported).
    """
    model, flags, source = _hardware()
    flags, torch_view = dict(flags), torch_cpu_support()
    if (
        source == "unknown" and torch_view is not None
    ):  # no /proc/cpuinfo, no sysctl: ask torch (its CPUID checks)
        filled = {
            flag: torch_view[key]
            for flag, key in _TORCH_FLAGS.items()
            if flag in flags and torch_view[key] is not None
        }
        if filled:
            flags.update(filled)
            source = "torch"
    return {"model": model, "flags": flags, "source": source, "torch": torch_view}
