"""The ways to run a tick's two graphs (:class:`EncodeStep`, :class:`DecodeStep`): the ``optimize=`` choices.

| name | what runs | exact? |
|---|---|---|
| ``eager`` | the graphs as PyTorch modules, op by op (the reference of every parity check) | reference |
| ``torchscript`` | ``torch.jit.trace`` + ``torch.jit.freeze``, one trace per batch size | fp32 |
| ``compile`` | ``torch.compile`` (inductor; needs a C++ compiler on CPU), one graph per batch size | fp32 |
| ``onnxruntime`` | ``torch.onnx.export`` (dynamic batch) run by ONNX Runtime, one native call per graph | fp32 |
| ``int8`` | eager with ``torch.ao.quantization.quantize_dynamic`` on every ``nn.Linear`` of the S2S step | approximate |
| ``onnxruntime-int8`` | the ONNX graph with ONNX Runtime's dynamic INT8 quantisation of MatMul weights | approximate |
| ``bf16``, ``fp16`` | eager with the S2S weights and KV caches in that dtype; only on a GPU | approximate |

fp32 variants must give tokens identical to ``eager`` (``select.py`` checks it); approximate ones are compared by
token agreement and audio change, and are never chosen by ``optimize=auto``. The ONNX files are exported once and
cached under ``$S2S_BENCH_CACHE/engine/`` (default ``~/.cache/s2s-bench/engine/``), keyed by the weights' digest,
the source code of ``custom_model`` (:func:`code_digest`), the sampling settings and the torch / onnxruntime versions.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

FP32_VARIANTS = ("eager", "torchscript", "compile", "onnxruntime")
AUTO_CANDIDATES = ("eager", "torchscript", "onnxruntime")
"""What ``optimize=auto`` tries: ``compile`` is left out because building it takes minutes on a small CPU
(419 s for the tiny test model on the shared 2-core machine); choose it with ``optimize=compile``."""
APPROXIMATE_VARIANTS = ("int8", "onnxruntime-int8", "bf16", "fp16")
VARIANTS = FP32_VARIANTS + APPROXIMATE_VARIANTS
GPU_ONLY = ("bf16", "fp16")


class VariantUnavailable(RuntimeError):
    """This variant cannot run here (missing package, compiler or device); the message says which and why."""


def cache_root() -> Path:
    """``$S2S_BENCH_CACHE/engine`` if set, else ``~/.cache/s2s-bench/engine``."""
    return Path(os.environ.get("S2S_BENCH_CACHE") or "~/.cache/s2s-bench").expanduser() / "engine"


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of every ``.py`` file of the ``custom_model`` package (path and bytes).

    The exported graphs and the ``optimize=auto`` decision depend on the code that builds the graphs as much as on
    the weights: keyed by the weights alone, a changed ``fused_step.py`` would run the ONNX file exported from the
    old code, and two revisions sharing one cache (``s2s-bench gate --against``) would measure the same graph.
    """
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def module_digest(*modules: nn.Module, extra: str = "") -> str:
    """A short digest of the modules' weights and buffers, the package's code (:func:`code_digest`) and
    ``extra`` (settings, versions)."""
    h = hashlib.sha256(extra.encode())
    h.update(code_digest().encode())

    def feed(value) -> None:
        if isinstance(value, Tensor):
            value = value.int_repr() if value.is_quantized else value
            h.update(str((tuple(value.shape), value.dtype)).encode())
            h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, (tuple, list)):
            for item in value:
                feed(item)
        else:  # e.g. the dtype entries of quantised linears' packed parameters
            h.update(repr(value).encode())

    for module in modules:
        for name, value in module.state_dict().items():
            h.update(name.encode())
            feed(value)
    return h.hexdigest()[:16]


class Runner:
    """Runs the two graphs of a tick; ``prepare(sizes, ...)`` builds what each batch size needs, off the clock."""

    name = "eager"
    exact = True
    state_dtype = torch.float32  # dtype of the KV caches this runner's graphs expect
    any_batch = True
    """Runs any batch size as it is; False: only the prepared sizes (traced or compiled per size), so the engine
    pads a batch up to the next one (rows of unused slots, computed and thrown away)."""

    def __init__(self, encode: nn.Module, decode: nn.Module) -> None:
        self.encode_module = encode
        self.decode_module = decode

    def prepare(self, encode_args: dict[int, tuple[Tensor, ...]], decode_args: dict[int, tuple[Tensor, ...]]):
        """Build and warm up for every batch size in the dicts (example arguments per size)."""
        for size in encode_args:
            self.encode(encode_args[size])
            self.decode(decode_args[size])

    def encode(self, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        with torch.inference_mode():
            return self.encode_module(*args)

    def decode(self, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        with torch.inference_mode():
            return self.decode_module(*args)


class TorchScriptRunner(Runner):
    name = "torchscript"
    any_batch = False

    def __init__(self, encode: nn.Module, decode: nn.Module) -> None:
        super().__init__(encode, decode)
        self.traced: dict[tuple[str, int], torch.jit.ScriptModule] = {}

    def _trace(self, kind: str, module: nn.Module, args: tuple[Tensor, ...]):
        key = (kind, args[0].shape[0])
        if key not in self.traced:
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore"
                )  # tracer warnings about Python ints from shapes: shapes are static
                traced = torch.jit.trace(module, args, check_trace=False)
                self.traced[key] = torch.jit.freeze(traced.eval())
        return self.traced[key]

    def prepare(self, encode_args, decode_args):
        for size in encode_args:
            self._trace("encode", self.encode_module, encode_args[size])
            self._trace("decode", self.decode_module, decode_args[size])
        super().prepare(encode_args, decode_args)

    def encode(self, args):
        with torch.inference_mode():
            return tuple(self._trace("encode", self.encode_module, args)(*args))

    def decode(self, args):
        with torch.inference_mode():
            return tuple(self._trace("decode", self.decode_module, args)(*args))


class CompileRunner(Runner):
    name = "compile"
    any_batch = False

    def __init__(self, encode: nn.Module, decode: nn.Module) -> None:
        super().__init__(encode, decode)
        try:
            import torch._inductor  # noqa: F401
        except Exception as exc:  # pragma: no cover - depends on the install
            raise VariantUnavailable(f"torch.compile's inductor backend cannot be imported: {exc}") from None
        self.compiled_encode = torch.compile(encode, dynamic=False, fullgraph=False)
        self.compiled_decode = torch.compile(decode, dynamic=False, fullgraph=False)

    def encode(self, args):
        with torch.inference_mode():
            return tuple(self.compiled_encode(*args))

    def decode(self, args):
        with torch.inference_mode():
            return tuple(self.compiled_decode(*args))


class OnnxRuntimeRunner(Runner):
    """Both graphs exported once (dynamic batch) and run by ONNX Runtime on CPU, one intra-op thread."""

    name = "onnxruntime"
    exact = True

    def __init__(
        self, encode: nn.Module, decode: nn.Module, digest: str, threads: int = 1, int8: bool = False
    ):
        super().__init__(encode, decode)
        try:
            import onnxruntime  # noqa: F401
        except ModuleNotFoundError:
            raise VariantUnavailable(
                "optimize=onnxruntime needs onnxruntime, onnx and onnxscript: pip install 's2s-bench[engine]'"
            ) from None
        self.int8 = int8
        if int8:
            self.name, self.exact = "onnxruntime-int8", False
        self.threads = threads
        self.folder = cache_root() / digest
        self.sessions: dict[str, object] = {}

    def _export(self, kind: str, module: nn.Module, args: tuple[Tensor, ...]) -> Path:
        path = self.folder / f"{kind}.onnx"
        if not path.is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{kind}.tmp{os.getpid()}.onnx")
            export_onnx(module, args, tmp, 5 if kind == "encode" else 1)
            os.replace(tmp, path)
        if not self.int8:
            return path
        qpath = path.with_name(f"{kind}-int8.onnx")
        if not qpath.is_file():
            from onnxruntime.quantization import QuantType, quantize_dynamic

            tmp = qpath.with_name(f"{kind}-int8.tmp{os.getpid()}.onnx")
            quantize_dynamic(
                str(path), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"]
            )
            os.replace(tmp, qpath)
        return qpath

    def _session(self, kind: str, module: nn.Module, args: tuple[Tensor, ...]):
        if kind not in self.sessions:
            import onnxruntime as ort

            path = self._export(kind, module, args)
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            names = [i.name for i in session.get_inputs()]
            self.sessions[kind] = (session, names)
        return self.sessions[kind]

    def _run(self, kind: str, module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        session, names = self._session(kind, module, args)
        wanted = set(names)
        feed = {f"in{i}": a.numpy() for i, a in enumerate(args) if f"in{i}" in wanted}
        return tuple(torch.from_numpy(x) for x in session.run(None, feed))  # releases the GIL while it runs

    def prepare(self, encode_args, decode_args):
        for size in encode_args:
            self._run("encode", self.encode_module, encode_args[size])
            self._run("decode", self.decode_module, decode_args[size])

    def encode(self, args):
        return self._run("encode", self.encode_module, args)

    def decode(self, args):
        return self._run("decode", self.decode_module, args)


def _rms_norm_symbolic(g, x, normalized_shape, weight, eps):
    """ONNX for ``aten::rms_norm`` over the last dimension (opset 18 has no RMSNormalization)."""
    from torch.onnx import symbolic_helper

    eps = symbolic_helper._maybe_get_const(eps, "f")
    eps = 1e-5 if eps is None or not isinstance(eps, float) else eps
    # Pow -> ReduceMean -> Add -> Sqrt -> Div -> Mul: the pattern ONNX Runtime fuses into one
    # SimplifiedLayerNormalization kernel
    square = g.op("Pow", x, g.op("Constant", value_t=torch.tensor(2.0, dtype=torch.float32)))
    mean = g.op("ReduceMean", square, g.op("Constant", value_t=torch.tensor([-1])), keepdims_i=1)
    denom = g.op("Sqrt", g.op("Add", mean, g.op("Constant", value_t=torch.tensor(eps, dtype=torch.float32))))
    y = g.op("Div", x, denom)
    return y if symbolic_helper._is_none(weight) else g.op("Mul", y, weight)


def _elu_symbolic(g, x, alpha, scale, input_scale):
    """ONNX for ``aten::elu`` as ``scale * max(x, alpha * (exp(min(x, 0)) - 1))`` (``alpha <= 1``), else
    ``scale * (relu(x) + alpha * (exp(min(x, 0) * input_scale) - 1))``: ONNX Runtime's own Elu kernel is scalar,
    and these vectorised nodes run 2.5-3x faster (the codec has ~26 ELUs per frame)."""
    from torch.onnx import symbolic_helper

    def const(value) -> float:
        v = symbolic_helper._maybe_get_const(value, "f")
        if not isinstance(v, (float, int)):
            raise RuntimeError("aten::elu with a non-constant alpha/scale: not exportable by this symbolic")
        return float(v)

    alpha, scale, input_scale = const(alpha), const(scale), const(input_scale)

    def times(t, factor: float):
        if factor == 1.0:
            return t
        return g.op("Mul", t, g.op("Constant", value_t=torch.tensor(factor, dtype=torch.float32)))

    zero = g.op("Constant", value_t=torch.tensor(0.0, dtype=torch.float32))
    one = g.op("Constant", value_t=torch.tensor(1.0, dtype=torch.float32))
    negative = times(g.op("Sub", g.op("Exp", times(g.op("Min", x, zero), input_scale)), one), alpha)
    if 0.0 < alpha <= 1.0 and input_scale == 1.0:
        # for x <= 0, alpha (e^x - 1) >= x, and for x > 0 it is 0 < x: the larger of the two is the ELU (one
        # node fewer than Relu + Add; the codec has ~26 ELUs per frame)
        return times(g.op("Max", x, negative), scale)
    return times(g.op("Add", g.op("Relu", x), negative), scale)


def export_onnx(module: nn.Module, args: tuple[Tensor, ...], path: Path, positional: int) -> None:
    """Export ``module`` with a dynamic batch (dimension 0 of every input) to ``path`` (weights inside);
    ``positional``: how many named arguments come before the module's ``*rest``.

    The TorchScript-based exporter traces in seconds; the ``torch.export`` one (tried if the first fails) takes
    a minute or more for the small model on 2 cores.
    """
    names = [f"in{i}" for i in range(len(args))]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.register_custom_op_symbolic("aten::rms_norm", _rms_norm_symbolic, 18)
            torch.onnx.register_custom_op_symbolic("aten::elu", _elu_symbolic, 18)
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=names,
                dynamic_axes={name: {0: "batch"} for name in names},
                opset_version=18,
                dynamo=False,
            )
            return
        except Exception:  # noqa: BLE001 - fall back to the other exporter below
            pass
        batch = torch.export.Dim("batch", min=1, max=1024)
        rest = args[positional:]
        shapes = tuple({0: batch} for _ in args[:positional]) + (tuple({0: batch} for _ in rest),)
        two = tuple(torch.cat([a, a]) for a in args)  # batch 2 as example: torch.export specialises size 1
        torch.onnx.export(
            module,
            two,
            str(path),
            input_names=names,
            dynamic_shapes=shapes,
            opset_version=18,
            dynamo=True,
            external_data=False,
        )


def quantize_linears(module: nn.Module) -> nn.Module:
    """``module`` with every ``nn.Linear`` replaced by a dynamically quantised INT8 one (weights int8, per tensor;
    activations quantised per call)."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        return quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)


def build_runner(
    name: str, encode: nn.Module, decode: nn.Module, device: torch.device, digest: str, threads: int = 1
) -> Runner:
    """The runner for variant ``name``; raises :class:`VariantUnavailable` when it cannot run here."""
    if name not in VARIANTS:
        raise ValueError(f"Expected optimize= to be auto or one of {', '.join(VARIANTS)} but got {name!r}")
    if name in GPU_ONLY and device.type != "cuda":
        raise VariantUnavailable(
            f"optimize={name} runs only on a GPU (device=cuda); this engine runs on {device}"
        )
    if name in ("onnxruntime", "onnxruntime-int8", "torchscript", "compile", "int8") and device.type != "cpu":
        if name != "compile":
            raise VariantUnavailable(
                f"optimize={name} is built for CPU here; use eager, compile, bf16 or fp16 on {device}"
            )
    if name in ("eager", "bf16", "fp16"):
        return Runner(encode, decode)
    if name == "torchscript":
        return TorchScriptRunner(encode, decode)
    if name == "compile":
        return CompileRunner(encode, decode)
    if name == "int8":
        runner = Runner(encode, decode)
        runner.name, runner.exact = "int8", False
        return runner
    return OnnxRuntimeRunner(encode, decode, digest, threads=threads, int8=name == "onnxruntime-int8")


def time_ticks(runner: Runner, encode_args, decode_args, ticks: int = 30) -> float:
    """Median wall time of one tick (encode graph + decode graph) in ms, after the runner is prepared."""
    samples = []
    for _ in range(ticks):
        t0 = time.perf_counter()
        runner.encode(encode_args)
        runner.decode(decode_args)
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    return samples[len(samples) // 2]
