"""``dtype=auto`` and the CPU flags behind it (backends/_dtype.py, harness/cpu_features.py).

The CPU is faked both ways (flags dicts as harness.cpu_features reports them, and /proc/cpuinfo texts), CUDA is
faked through ``cuda_bf16``; one end-to-end run goes through the CLI with the ``custom`` backend's tiny random
architecture (latency only) to show the recorded flags and the loud warning in run.json and on the terminal.
"""

from __future__ import annotations

import json
import sys

import pytest

from backends import _dtype
from backends._dtype import SlowDtypeWarning, describe_dtype, resolve_dtype
from harness import cpu_features as cf
from harness.cli import main
from harness.results import machine_info


def x86(*present: str, torch_bf16: bool | None = None) -> dict:
    """Features of an x86 CPU that has exactly ``present`` of the recorded flags."""
    torch_view = None if torch_bf16 is None else {"native_bf16": torch_bf16}
    flags = {name: name in present for name in cf.X86_FLAGS}
    return {"model": "Fake CPU", "flags": flags, "source": "fake", "torch": torch_view}


NO_AVX512 = x86("avx2", "fma", "f16c")  # the machine: no AVX-512, no AMX
ZEN4 = x86("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16")
SAPPHIRE_RAPIDS = x86("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
UNKNOWN = {"model": None, "flags": {name: None for name in cf.X86_FLAGS}, "source": "unknown", "torch": None}


@pytest.mark.parametrize(
    ("features", "expected"),
    [(NO_AVX512, "float32"), (ZEN4, "bfloat16"), (SAPPHIRE_RAPIDS, "bfloat16"), (UNKNOWN, "float32")],
    ids=["no-avx512", "avx512_bf16", "amx", "unknown"],
)
def test_auto_on_cpu_is_bf16_only_where_the_cpu_multiplies_bf16_natively(features, expected):
    choice = resolve_dtype("cascade", "auto", "cpu", features=features)
    assert (choice.requested, choice.resolved, choice.warning) == ("auto", expected, None)
    assert choice.reason.startswith("auto:")
    if expected == "bfloat16":
        assert "amx_bf16" in choice.reason or "avx512_bf16" in choice.reason


def test_auto_trusts_torch_when_it_reports_no_native_bf16_kernels():
    assert resolve_dtype("cascade", "auto", "cpu", features=x86("avx512_bf16", torch_bf16=True)).resolved == (
        "bfloat16"
    )
    choice = resolve_dtype("cascade", "auto", "cpu", features=x86("avx512_bf16", torch_bf16=False))
    assert choice.resolved == "float32" and "torch reports no native bf16" in choice.reason


def test_custom_stays_float32_on_every_cpu_but_takes_bf16_on_cuda():
    assert (
        resolve_dtype("custom", "auto", "cpu", cpu_bf16=False, features=SAPPHIRE_RAPIDS).resolved == "float32"
    )
    assert resolve_dtype("custom", "auto", "cuda:0", cpu_bf16=False, cuda_bf16=True).resolved == "bfloat16"


def test_auto_on_cuda_is_bf16_or_fp16_where_bf16_is_unsupported():
    assert resolve_dtype("seamless", "auto", "cuda", cuda_bf16=True).resolved == "bfloat16"
    old_gpu = resolve_dtype("seamless", "auto", "cuda:1", cuda_bf16=False)
    assert old_gpu.resolved == "float16" and old_gpu.device == "cuda:1" and old_gpu.warning is None
    forced = resolve_dtype("seamless", "float32", "cuda", cuda_bf16=True)
    assert forced.resolved == "float32" and forced.warning is None


@pytest.mark.parametrize(
    ("features", "dtype"), [(NO_AVX512, "bfloat16"), (ZEN4, "float16"), (UNKNOWN, "bfloat16")]
)
def test_a_forced_half_dtype_where_the_cpu_emulates_it_is_honoured_with_a_warning(features, dtype):
    choice = resolve_dtype("cascade", dtype, "cpu", features=features)
    assert choice.resolved == dtype  # the user's choice is kept, and said to be slow
    assert choice.warning and f"dtype={dtype}" in choice.warning and "slower than float32" in choice.warning
    with pytest.warns(SlowDtypeWarning, match=f"cascade: dtype={dtype}"):
        _dtype.announce(choice)


def test_forced_dtypes_that_are_native_give_no_warning():
    assert resolve_dtype("cascade", "bfloat16", "cpu", features=ZEN4).warning is None
    assert resolve_dtype("cascade", "float16", "cpu", features=SAPPHIRE_RAPIDS).warning is None
    assert resolve_dtype("cascade", "float32", "cpu", features=NO_AVX512).warning is None
    with pytest.raises(ValueError, match="'int8'"):
        resolve_dtype("cascade", "int8", "cpu", features=ZEN4)


def test_arm_bf16_is_native_when_forced_but_auto_stays_float32_unmeasured():
    _, arm_flags = cf.parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd fphp sve bf16 i8mm\n")
    arm = {"model": None, "flags": arm_flags, "source": "fake", "torch": None}
    assert resolve_dtype("cascade", "auto", "cpu", features=arm).resolved == "float32"
    assert resolve_dtype("cascade", "bfloat16", "cpu", features=arm).warning is None


def test_describe_records_the_resolved_dtype_why_and_the_warning():
    choice = resolve_dtype("cascade", "bfloat16", "cpu", features=NO_AVX512)
    described = describe_dtype(
        {"name": "cascade", "options": {"dtype": "bfloat16", "mode": "sentence"}}, choice
    )
    assert described["dtype"]["requested"] == "bfloat16" and described["dtype"]["resolved"] == "bfloat16"
    assert described["warnings"] == [choice.warning]
    auto = describe_dtype(
        {"options": {"dtype": "auto"}}, resolve_dtype("cascade", "auto", "cpu", features=ZEN4)
    )
    assert auto["options"]["dtype"] == "bfloat16" and auto["dtype"]["requested"] == "auto"
    assert "warnings" not in auto


ZEN4_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse sse2 avx fma f16c avx2 avx512f avx512bw avx512_vnni avx512_bf16 avx512_bitalg
processor\t: 1
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse sse2 avx fma f16c avx2 avx512f avx512bw avx512_vnni avx512_bf16 avx512_bitalg
"""


def test_cpuinfo_flags_are_parsed_exactly_and_missing_flag_lines_are_unknown():
    model, flags = cf.parse_cpuinfo(ZEN4_CPUINFO)
    assert model == "AMD EPYC 9R14"
    assert flags["avx512_bf16"] and flags["avx2"] and flags["fma"] and flags["f16c"]
    assert (
        flags["amx_bf16"] is False and flags["avx512_fp16"] is False
    )  # "avx512_bitalg" is not "avx512_bf16"
    assert set(flags) == set(cf.X86_FLAGS)
    _, none = cf.parse_cpuinfo("processor\t: 0\n")
    assert set(none.values()) == {None}


def test_machine_info_records_the_flags_and_torch_only_when_it_is_imported(monkeypatch):
    monkeypatch.setattr(cf, "_hardware", lambda: ("Fake CPU", dict(ZEN4["flags"]), "/proc/cpuinfo"))
    info = machine_info()
    assert info["cpu_flags"]["avx512_bf16"] is True and info["cpu_flags"]["amx_bf16"] is False
    assert info["cpu_flags_source"] == "/proc/cpuinfo"
    if "torch" in sys.modules:
        assert info["torch_cpu"]["native_bf16"] in (True, False, None) and "capability" in info["torch_cpu"]
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert "torch_cpu" not in machine_info()  # never imported just for this
    assert "torch" not in sys.modules


def test_every_backend_with_a_dtype_defaults_to_auto():
    from harness.registry import get_backend_class

    for name in ("cascade", "seamless", "speechgpt", "custom"):
        option = get_backend_class(name).options["dtype"]
        assert option.default == "auto" and set(option.choices) == set(_dtype.DTYPE_CHOICES), name


def test_a_forced_slow_dtype_is_loud_in_run_json_and_on_the_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_dtype, "cpu_features", lambda: NO_AVX512)
    out = tmp_path / "run"
    spec = "custom:weights=random,preset=tiny,random_answer_s=0.1,dtype=bfloat16"
    argv = ["run", "-b", spec, "-b", "custom:weights=random,preset=tiny,random_answer_s=0.1"]
    with pytest.warns(SlowDtypeWarning, match="custom: dtype=bfloat16 on a CPU without native bfloat16"):
        assert main([*argv, "--limit", "1", "--pacing", "fast", "--out", str(out), "-q"]) == 0
    assert "WARNING: custom: dtype=bfloat16 on a CPU without native bfloat16" in capsys.readouterr().err
    meta = json.loads((out / "run.json").read_text())
    forced, auto = meta["backends"]
    assert forced["dtype"]["resolved"] == "bfloat16" and "Fake CPU lacks" in forced["warnings"][0]
    assert auto["dtype"] == {
        "requested": "auto",
        "resolved": "float32",
        "device": "cpu",
        "reason": "auto: custom runs float32 on CPUs (bf16 measured slower for it)",
        "warning": None,
    }
    assert auto["options"]["dtype"] == "float32" and "warnings" not in auto
    assert set(meta["machine"]["cpu_flags"]) >= {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "fma", "f16c"}
    assert meta["machine"]["torch_cpu"]["version"]  # custom imported torch before the machine info was taken
    assert meta["summary"][spec]["n_ok"] == 1


def test_where_the_os_gives_no_flags_torch_fills_in_the_bf16_ones(monkeypatch):
    unknown = {name: None for name in cf.X86_FLAGS}
    monkeypatch.setattr(cf, "_hardware", lambda: (None, dict(unknown), "unknown"))
    view = {"avx512_bf16": False, "amx_tile": True, "amx_fp16": None, "native_bf16": True}
    monkeypatch.setattr(cf, "torch_cpu_support", lambda: view)
    features = cf.cpu_features()
    assert features["source"] == "torch"
    assert features["flags"]["amx_bf16"] is True and features["flags"]["avx512_bf16"] is False
    assert features["flags"]["avx2"] is None and features["flags"]["amx_fp16"] is None  # still unknown
    assert resolve_dtype("cascade", "auto", "cpu", features=features).resolved == "bfloat16"
    monkeypatch.setattr(cf, "torch_cpu_support", lambda: None)
    assert cf.cpu_features()["source"] == "unknown"


def test_two_cpus_both_named_amd_epyc_are_different_machine_classes_by_generation():
    from harness.gate import machine_class as gate_class
    from harness.results import _cpu_id, machine_class

    zen1 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 23\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n\n"
    zen4 = zen1.replace(": 23", ": 25").replace("model\t\t: 1", "model\t\t: 17")
    assert _cpu_id(zen1) == "AuthenticAMD family 23 model 1"
    assert _cpu_id(zen4) == "AuthenticAMD family 25 model 17"
    assert _cpu_id("Features\t: asimd\nCPU implementer\t: 0x41\n") is None  # ARM: no x86 family line
    a = {"cpu": "AMD EPYC", "cpu_id": _cpu_id(zen1), "cpu_count": 2, "gpu": None}
    b = dict(a, cpu_id=_cpu_id(zen4))
    assert machine_class(a) != machine_class(b)
    assert gate_class({"machine": a}) == machine_class(a) != gate_class({"machine": b})
    # a run recorded before the generation was: not comparable with one that has it
    assert machine_class({k: v for k, v in a.items() if k != "cpu_id"}) != machine_class(a)
