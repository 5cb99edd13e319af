"""``dtype=auto``: the fastest dtype that is native on the device, and a loud warning when a slow one is forced.

bfloat16 halves a model's memory and, where the hardware multiplies bf16 natively, its matmul time. Where it does
not, torch converts every operand to float32 and back and the same model runs several times slower than in float32
(issue 20: Whisper-small's ASR stage took 42 s in bf16 against 10 s in float32 on a 2-core EPYC without AVX-512).
So ``auto`` resolves, per backend, at load time:

- CUDA: bfloat16 where the GPU supports it (Ampere and later), else float16;
- CPU: bfloat16 where the CPU has AMX (``amx_bf16``) or AVX-512 BF16 (``avx512_bf16``), else float32. The
  evidence for counting AVX-512 BF16 (no AMX) is in docs/baselines.md ("bf16 on CPUs"): on a Zen 4 EPYC it made
  the baselines' matmuls faster, not slower (``python -m backends.bench_dtype`` measures it on any machine);
- a CPU whose flags cannot be read: float32 (the safe side);
- ``custom`` (``cpu_bf16=False``): float32 on every CPU. Its per-frame steps are tiny matmuls on one thread, where
  conversions weigh more than the multiplies: bf16 measured 1.4x slower than float32 on the same Zen 4.

float16 on a CPU is native only with AVX-512 FP16 or AMX-FP16; elsewhere it is emulated too. A forced bf16/fp16 on
a CPU where it is emulated is honoured, with a :class:`SlowDtypeWarning` at load and a ``warning`` in run.json.
The decision and its reason are recorded by :func:`describe_dtype` in the backend's entry of run.json.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

from harness.cpu_features import cpu_features

DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
DTYPE_HELP = (
    "torch dtype: auto (bf16 on CUDA and on CPUs with native bf16, else float32), float32, bfloat16, float16"
)

AUTO_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""x86 flags under which ``auto`` picks bfloat16 on a CPU (measured: docs/baselines.md, "bf16 on CPUs")."""
NATIVE_CPU_FLAGS = {
    "bfloat16": ("amx_bf16", "avx512_bf16"),
    "float16": ("amx_fp16", "avx512_fp16"),
}
"""x86 flags under which a forced dtype's matmuls run natively (no warning); without them torch emulates it."""
NATIVE_ARM_FLAGS = {"bfloat16": ("bf16",), "float16": ("fphp",)}
"""The same for ARM. FEAT_BF16 (``bf16``) is native bf16, but unmeasured here: ``auto`` leaves ARM on float32."""


class SlowDtypeWarning(UserWarning):
    """bfloat16 or float16 was asked for on a CPU that emulates it: expect several times float32's latency."""


@dataclass(frozen=True)
class DtypeChoice:
    """What a backend runs in and why: ``requested`` (the option), ``resolved`` (a torch dtype name), ``reason``
    (one sentence a user can check against the machine info), ``warning`` (set when the choice is known slow)."""

    requested: str
    resolved: str
    device: str
    reason: str
    warning: str | None = None


def _is_arm(flags: dict[str, Any]) -> bool:
    return any(name in flags for name in ("asimd", "sve", "bf16"))


def cpu_native(dtype: str, features: dict[str, Any] | None = None) -> tuple[bool | None, str]:
    """(is ``dtype`` native on this CPU?, the flag that says so, or the flags it lacks); None when unknown."""
    if dtype == "float32":
        return True, "float32"
    features = features if features is not None else cpu_features()
    flags = features.get("flags") or {}
    wanted = (NATIVE_ARM_FLAGS if _is_arm(flags) else NATIVE_CPU_FLAGS)[dtype]
    present = [f for f in wanted if flags.get(f)]
    if present:
        return True, present[0]
    if all(flags.get(f) is None for f in wanted):
        return None, "unknown"
    return False, " and ".join(wanted)


def _auto_cpu(features: dict[str, Any]) -> tuple[str, str]:
    """(dtype, reason) for ``auto`` on a CPU whose work gains from native bf16."""
    flags = features.get("flags") or {}
    if _is_arm(flags):
        return "float32", "auto: bf16 on ARM CPUs is not measured here, float32"
    present = [f for f in AUTO_BF16_FLAGS if flags.get(f)]
    torch_view = (features.get("torch") or {}).get("native_bf16")
    if present and torch_view is False:
        return "float32", f"auto: the CPU has {present[0]} but torch reports no native bf16 kernels, float32"
    if present:
        return "bfloat16", f"auto: the CPU has native bfloat16 ({present[0]})"
    if all(flags.get(f) is None for f in AUTO_BF16_FLAGS):
        return "float32", "auto: the CPU's flags are unknown, float32 (the safe side)"
    return "float32", f"auto: the CPU has no native bfloat16 (no {' or '.join(AUTO_BF16_FLAGS)}), float32"


def resolve_dtype(
    backend: str,
    requested: str,
    device: Any,
    *,
    cpu_bf16: bool = True,
    features: dict[str, Any] | None = None,
    cuda_bf16: bool | None = None,
) -> DtypeChoice:
    """The dtype ``backend`` runs in on ``device`` (a torch.device or its string) for the option ``requested``.

    ``cpu_bf16=False`` keeps ``auto`` on float32 on every CPU, for a backend whose CPU work is too small for native
    bf16 to pay (``custom``'s per-frame steps). ``features`` (default: this machine's
    :func:`harness.cpu_features.cpu_features`) and ``cuda_bf16`` (default: ``torch.cuda.is_bf16_supported()``) can
    be given to decide for another machine; tests fake both.
    """
    if requested not in DTYPE_CHOICES:
        raise ValueError(f"Expected dtype to be one of {', '.join(DTYPE_CHOICES)} but got {requested!r}")
    device_name = str(device)
    if device_name.startswith("cuda"):
        if requested != "auto":
            return DtypeChoice(requested, requested, device_name, f"dtype={requested} asked for")
        if cuda_bf16 is None:
            import torch

            cuda_bf16 = bool(torch.cuda.is_bf16_supported())
        if cuda_bf16:
            return DtypeChoice(requested, "bfloat16", device_name, "auto: the CUDA device supports bfloat16")
        return DtypeChoice(
            requested, "float16", device_name, "auto: the CUDA device has no bfloat16, float16 instead"
        )
    if not device_name.startswith("cpu"):  # mps, xpu, ...: no rule of ours; float32 is the safe side
        resolved = "float32" if requested == "auto" else requested
        return DtypeChoice(requested, resolved, device_name, f"dtype={requested} on {device_name}")
    features = features if features is not None else cpu_features()
    if requested == "auto" and not cpu_bf16:
        return DtypeChoice(
            requested,
            "float32",
            device_name,
            f"auto: {backend} runs float32 on CPUs (bf16 measured slower for it)",
        )
    if requested == "auto":
        resolved, reason = _auto_cpu(features)
        return DtypeChoice(requested, resolved, device_name, reason)
    native, flag = cpu_native(requested, features)
    if native:
        return DtypeChoice(
            requested, requested, device_name, f"dtype={requested} asked for; native here ({flag})"
        )
    model = features.get("model") or "this CPU"
    if native is None:
        warning = (
            f"{backend}: dtype={requested} on a CPU whose flags are unknown ({model}): if it lacks native "
            f"{requested} this runs several times slower than float32; dtype=auto picks float32 there"
        )
    else:
        warning = (
            f"{backend}: dtype={requested} on a CPU without native {requested} ({model} lacks {flag}): torch "
            f"emulates it and the model runs several times slower than float32; use dtype=auto or float32"
        )
    return DtypeChoice(requested, requested, device_name, f"dtype={requested} asked for", warning)


def announce(choice: DtypeChoice) -> DtypeChoice:
    """Emit ``choice``'s warning (if any) as a :class:`SlowDtypeWarning`, shown on stderr at load; returns it."""
    if choice.warning:
        warnings.warn(choice.warning, SlowDtypeWarning, stacklevel=3)
    return choice


def describe_dtype(described: dict[str, Any], choice: DtypeChoice | None) -> dict[str, Any]:
    """A backend's ``describe()`` with its dtype decision: ``dtype`` = the :class:`DtypeChoice`, and ``warnings``.

    ``options`` are the effective options, so ``options["dtype"]`` is the dtype that ran (``auto`` resolved: two
    runs compare as equals only if they ran in the same dtype); ``dtype.requested`` keeps what was asked for, and
    the backend key keeps the user's spelling.
    """
    if choice is None:
        return described
    options = {**described.get("options", {}), "dtype": choice.resolved}
    out = {**described, "options": options, "dtype": asdict(choice)}
    if choice.warning:
        out["warnings"] = [*described.get("warnings", []), choice.warning]
    return out
