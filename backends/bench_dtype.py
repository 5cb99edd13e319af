"""Is bfloat16 faster than float32 on this CPU for the baselines' models? ``python -m backends.bench_dtype``.

``dtype=auto`` (see :mod:`backends._dtype`) picks bfloat16 on a CPU only where the evidence says it pays. This is
the evidence: the baselines' real architectures (``backends/_presets.py``, random weights) and two bare matmuls of
their shapes, timed in float32 and in bfloat16 side by side in one process. Rounds are interleaved (A B, B A, A B,
...) so drift and other load hit both dtypes alike, and each round gives a paired ratio bf16 / fp32; the table
reports the median of those ratios (< 1: bf16 is faster) with the median times. The CPU's name and flags, torch's
own view of bf16 support, the thread count and the load average before and after go in the header, since a shared
machine makes every absolute figure pessimistic. Not a test: a figure.

Workloads (times in ms per call):

- ``matmul-encoder``: (1500 x 768) @ (768 x 3072), one Whisper-small encoder FFN matmul over a 30 s window;
- ``matmul-decode``: (1 x 2048) @ (2048 x 8192), one Llama-3.2-1B FFN matmul for one generated token;
- ``whisper-small-encoder``: the Whisper-small encoder over its fixed 30 s window (the ASR stage's main cost);
- ``llama-1b-prefill``: Llama-3.2-1B over an 88-token prompt (the cascade's chat prompt + a transcript);
- ``llama-1b-generate``: ``generate`` of 16 tokens after the 88-token prompt, the way the cascade calls it;
- ``custom-s2s-50-steps``: one second (50 frames) of the ``custom`` backend's committed S2S model stepping frame by
  frame on 1 thread, its default: tiny matmuls, where conversions and dispatch weigh more than the multiplies.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

WORKLOADS = (
    "matmul-encoder",
    "matmul-decode",
    "whisper-small-encoder",
    "llama-1b-prefill",
    "llama-1b-generate",
    "custom-s2s-50-steps",
)
PROMPT_TOKENS = 88
GENERATE_TOKENS = 16
CUSTOM_STEPS = 50
"""custom-s2s-50-steps: one second of the committed s2s-small model's frame-by-frame stepping (50 x 20 ms)."""


def _matmul(m: int, k: int, n: int) -> Callable[[Any], Callable[[], Any]]:
    def build(dtype: Any) -> Callable[[], Any]:
        import torch

        g = torch.Generator().manual_seed(0)
        a = torch.randn(m, k, generator=g).to(dtype)
        w = torch.nn.Linear(k, n, bias=False).to(dtype)
        return lambda: w(a)

    return build


def _whisper_encoder(dtype: Any) -> Callable[[], Any]:
    import torch
    from transformers import WhisperForConditionalGeneration

    from . import _hf, _presets

    config, _ = _presets.whisper("whisper-small")
    encoder = _hf.random_model(
        WhisperForConditionalGeneration, config, torch.device("cpu"), dtype
    ).get_encoder()
    mel = torch.randn(1, config.num_mel_bins, 3000, generator=torch.Generator().manual_seed(0)).to(dtype)
    return lambda: encoder(mel)


def _llama(dtype: Any) -> Any:
    import torch
    from transformers import LlamaForCausalLM

    from . import _hf, _presets

    return _hf.random_model(LlamaForCausalLM, _presets.llama("llama-3.2-1b"), torch.device("cpu"), dtype)


def _llama_prefill(dtype: Any) -> Callable[[], Any]:
    import torch

    model = _llama(dtype)
    ids = torch.randint(
        0, model.config.vocab_size, (1, PROMPT_TOKENS), generator=torch.Generator().manual_seed(0)
    )
    return lambda: model(input_ids=ids, use_cache=True)


def _custom_steps(dtype: Any) -> Callable[[], Any]:
    """The ``custom`` backend's per-frame work: 50 steps of the committed S2S model, 1 thread (its default)."""
    import torch

    from custom_model.s2s import S2SModel, StreamingGenerator

    from .custom import DEFAULT_S2S

    model = S2SModel.from_pretrained(DEFAULT_S2S, map_location="cpu").to(dtype).eval()
    gen = StreamingGenerator(model, 1, device="cpu", dtype=dtype)
    c = model.config
    user = torch.randint(0, c.card, (CUSTOM_STEPS, 1, c.n_q), generator=torch.Generator().manual_seed(0))

    def steps() -> None:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            gen.reset()
            for frame in user:
                gen.step(frame)
        finally:
            torch.set_num_threads(threads)

    return steps


def _llama_generate(dtype: Any) -> Callable[[], Any]:
    import torch

    model = _llama(dtype)
    ids = torch.randint(
        0, model.config.vocab_size, (1, PROMPT_TOKENS), generator=torch.Generator().manual_seed(0)
    )
    n = GENERATE_TOKENS
    pad = model.generation_config.eos_token_id
    return lambda: model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n, do_sample=False,
        pad_token_id=pad,
    )  # fmt: skip


BUILDERS: dict[str, Callable[[Any], Callable[[], Any]]] = {
    "matmul-encoder": _matmul(1500, 768, 3072),
    "matmul-decode": _matmul(1, 2048, 8192),
    "whisper-small-encoder": _whisper_encoder,
    "llama-1b-prefill": _llama_prefill,
    "llama-1b-generate": _llama_generate,
    "custom-s2s-50-steps": _custom_steps,
}


MIN_ROUND_S = 0.25
"""Short workloads are called until a round has lasted this long, so a round is never one lucky call."""


def _time_ms(fn: Callable[[], Any], repeat: int) -> float:
    """The fastest of at least ``repeat`` calls (more for short ones), in ms: the least disturbed by other load."""
    import torch

    best = float("inf")
    calls = 0
    begin = time.perf_counter_ns()
    with torch.inference_mode():
        while calls < repeat or (time.perf_counter_ns() - begin) / 1e9 < MIN_ROUND_S:
            start = time.perf_counter_ns()
            fn()
            best = min(best, (time.perf_counter_ns() - start) / 1e6)
            calls += 1
    return best


def measure(workload: str, dtypes: list[str], rounds: int, repeat: int, warmup: int = 2) -> dict[str, Any]:
    """Times of ``workload`` per dtype, rounds interleaved with alternating order; paired ratios to the first.

    ``warmup`` unmeasured calls per dtype first: oneDNN builds and caches bf16 kernels per shape on first use.
    """
    import torch

    calls = {name: BUILDERS[workload](getattr(torch, name)) for name in dtypes}
    with torch.inference_mode():
        for fn in calls.values():  # first-call allocations and kernel selection are not measured
            for _ in range(warmup):
                fn()
    times: dict[str, list[float]] = {name: [] for name in dtypes}
    for r in range(rounds):
        for name in dtypes if r % 2 == 0 else list(reversed(dtypes)):
            times[name].append(_time_ms(calls[name], repeat))
    del calls
    gc.collect()
    base = dtypes[0]
    return {
        "workload": workload,
        "median_ms": {name: statistics.median(t) for name, t in times.items()},
        "ratio": {
            name: statistics.median(a / b for a, b in zip(times[name], times[base], strict=True))
            for name in dtypes[1:]
        },
        "ratio_range": {
            name: (
                min(a / b for a, b in zip(times[name], times[base], strict=True)),
                max(a / b for a, b in zip(times[name], times[base], strict=True)),
            )
            for name in dtypes[1:]
        },
    }


def _header(args: argparse.Namespace) -> list[str]:
    import torch

    from harness.cpu_features import cpu_features

    features = cpu_features()
    load = os.getloadavg()
    return [
        f"CPU: {features['model']} ({os.cpu_count()} logical CPUs), flags: "
        + (", ".join(f for f in features["flags"] if features["flags"][f]) or "none of those checked"),
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16 per torch: "
        f"{(features['torch'] or {}).get('native_bf16')}; {args.warmup} warm-up calls, then rounds {args.rounds} x "
        f"best of {args.repeat}, interleaved",
        f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m backends.bench_dtype", description=__doc__.split("\n")[0])
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma list of {', '.join(WORKLOADS)}")
    p.add_argument("--dtypes", default="float32,bfloat16", help="comma list; ratios are to the first")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per workload (default 5)")
    p.add_argument("--repeat", type=int, default=2, help="calls per round; the fastest counts (default 2)")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured calls per dtype first (default 2)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in workloads if w not in BUILDERS]
    if unknown:
        p.error(f"unknown workload {unknown[0]!r}; known: {', '.join(WORKLOADS)}")
    print("\n".join(_header(args)), flush=True)
    others = dtypes[1:]
    head = ["workload", *(f"{d} ms" for d in dtypes), *(f"{d} / {dtypes[0]} (min-max)" for d in others)]
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head), flush=True)
    for workload in workloads:
        res = measure(workload, dtypes, args.rounds, args.repeat, args.warmup)
        cells = [workload, *(f"{res['median_ms'][d]:,.1f}" for d in dtypes)]
        cells += [
            f"{res['ratio'][d]:.2f} ({res['ratio_range'][d][0]:.2f}-{res['ratio_range'][d][1]:.2f})"
            for d in others
        ]
        print("| " + " | ".join(cells) + " |", flush=True)
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
