"""Micro-benchmarks of the engine's tick with pytest-benchmark: per variant and batch size (1, 4, 16, 32, 64).

Not part of ``make test`` (``testpaths = tests``); run explicitly, e.g.::

    pytest benchmarks/ --benchmark-json=reports/engine-bench.json          # all variants but compile
    S2S_BENCH_COMPILE=1 pytest benchmarks/ -k compile                      # torch.compile too (minutes to build)
    pytest benchmarks/ --benchmark-compare --benchmark-autosave             # against the last saved run
    python -m custom_model.engine.bench_report reports/engine-bench.json   # the Markdown table for reports/

The model is the committed s2s-small + its codec (``custom_model/checkpoints/s2s-small``), another exported
checkpoint folder with ``S2S_ENGINE_BENCH_CHECKPOINT=DIR`` (its ``codec/`` is served; codec v2 through
:class:`~custom_model.engine.V2FrameCodec`), or ``S2S_ENGINE_BENCH_PRESET=base`` for the base architecture with random weights (latency only; GPU with
``S2S_ENGINE_BENCH_DEVICE=cuda``). One tick = every one of ``B`` sessions steps one 20 ms frame: codec encode,
temporal step, depth loop over the codebooks, codec decode. ``per-session`` is the old path for comparison: ``B``
sessions each running ``StreamingGenerator`` + the codec's stream, one after the other (what one process does per
20 ms with ``engine=per-session``). Threads: torch and ONNX Runtime use 1 intra-op thread.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
import torch

torch.set_num_threads(1)

BATCHES = (1, 4, 16, 32, 64)
VARIANTS = ["per-session", "eager", "torchscript", "onnxruntime", "int8", "onnxruntime-int8", "compile"]
PRESET = os.environ.get("S2S_ENGINE_BENCH_PRESET", "checkpoint")
DEVICE = os.environ.get("S2S_ENGINE_BENCH_DEVICE", "cpu")
CHECKPOINT = os.environ.get("S2S_ENGINE_BENCH_CHECKPOINT") or os.path.join(
    os.path.dirname(__file__), "..", "custom_model", "checkpoints", "s2s-small"
)
if DEVICE.startswith("cuda"):
    VARIANTS = ["per-session", "eager", "compile", "bf16", "fp16"]


@pytest.fixture(scope="session")
def models():
    return load_models()


def load_models():
    """(codec, model, silence codes) of the benchmark: the checkpoint, or random weights of ``PRESET``."""
    from custom_model.codec import Codec, CodecConfig
    from custom_model.s2s import S2SModel, config_preset

    if PRESET == "checkpoint":
        codec = Codec.from_pretrained(os.path.join(CHECKPOINT, "codec"))
        model = S2SModel.from_pretrained(CHECKPOINT)
    else:  # random weights: latency only
        torch.manual_seed(0)
        codec = Codec(CodecConfig.preset(PRESET)).eval()
        codec.quantizer.init_random_()
        model = S2SModel(config_preset(PRESET, n_q=codec.n_q, card=codec.codebook_size)).eval()
    codec, model = codec.to(DEVICE), model.to(DEVICE)
    with torch.inference_mode():
        silence = codec.encode(torch.zeros(1, 1, codec.frame_size * 16, device=DEVICE))[0, :, -1]
    return codec, model, silence


_ENGINES: dict = {}


def build_engine(models, variant, **kw):
    """A prepared engine of the benchmark's model for ``variant`` (raises ``VariantUnavailable``)."""
    from custom_model.engine import Engine, frame_codec

    codec, model, silence = models
    engine = Engine(
        model, frame_codec(codec), silence, max_slots=max(BATCHES), optimize=variant, device=DEVICE, **kw
    )
    engine.prepare()
    return engine


def engine_for(models, variant):
    from custom_model.engine.variants import VariantUnavailable

    if variant not in _ENGINES:
        if variant == "compile" and not os.environ.get("S2S_BENCH_COMPILE"):
            _ENGINES[variant] = "set S2S_BENCH_COMPILE=1 to build torch.compile (minutes on a small CPU)"
        else:
            try:
                _ENGINES[variant] = build_engine(models, variant)
            except VariantUnavailable as exc:
                _ENGINES[variant] = str(exc)
    engine = _ENGINES[variant]
    if isinstance(engine, str):
        pytest.skip(engine)
    return engine


def tick_function(engine, batch):
    """One tick of ``batch`` sessions (all slots live and runnable): encode+step graph, KV write, decode graph."""
    st = engine.state
    for slot in range(batch):
        st.reset(slot, slot)
    pcm = 0.1 * torch.randn(batch, engine.codec.frame_size, device=engine.device)

    def tick():
        _, frame = st.commit_step(engine.runner.encode(st.step_inputs(pcm, engine.sampling)))
        st.commit_decode(engine.runner.decode(st.decode_inputs(frame)))
        if engine.device.type == "cuda":
            torch.cuda.synchronize()

    return tick


def per_session_tick(models, batch):
    from custom_model.s2s import Sampling, StreamingGenerator

    codec, model, _ = models
    streams = [codec.streaming(1) for _ in range(batch)]
    gens = [StreamingGenerator(model, 1, Sampling()) for _ in range(batch)]
    pcm = 0.1 * torch.randn(1, 1, codec.frame_size, device=DEVICE)
    codes = torch.zeros(1, codec.n_q, 1, dtype=torch.long, device=DEVICE)

    def tick():
        with torch.inference_mode():
            for stream, gen in zip(streams, gens, strict=True):
                user = stream.encode_step(pcm)
                gen.step(user[:, :, 0])
                stream.decode_step(codes)

    return tick


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_tick(benchmark, models, variant, batch):
    benchmark.group = f"tick, batch {batch}"
    benchmark.extra_info.update(
        variant=variant,
        batch=batch,
        preset=PRESET,
        device=DEVICE,
        checkpoint=CHECKPOINT if PRESET == "checkpoint" else None,
    )
    if variant == "per-session":
        if batch > 16:
            pytest.skip("per-session path at batch > 16: seconds per tick, nothing to learn")
        tick = per_session_tick(models, batch)
    else:
        engine = engine_for(models, variant)
        tick = tick_function(engine, batch)
    with torch.inference_mode():
        for _ in range(3):
            tick()
        rounds = 40 if batch <= 4 else 15
        benchmark.pedantic(tick, rounds=rounds, iterations=1, warmup_rounds=2)
    benchmark.extra_info["ms_per_session"] = benchmark.stats.stats.median * 1e3 / batch


@pytest.mark.parametrize("batch", (16, 32))
@pytest.mark.parametrize("decode_thread", [False, True])
def test_engine_tick_answering(benchmark, models, decode_thread, batch):
    """Ticks through ``Engine.tick`` (ONNX Runtime) with ``batch`` sessions all answering, so every tick also
    decodes every row: with ``decode_thread`` tick t's decode runs beside tick t+1's step. Per tick: collect,
    step, hand-off (and, without the thread, the decode)."""
    from custom_model.engine import TurnPolicy
    from custom_model.engine.variants import VariantUnavailable

    try:
        engine = build_engine(models, "onnxruntime", decode_thread=decode_thread)
    except VariantUnavailable as exc:
        pytest.skip(str(exc))
    policy = TurnPolicy(force_answer=True, max_answer_frames=10**6)
    for _ in range(batch):
        engine.open(policy, lambda kind, payload: None).end_input()

    def tick():
        with engine.cond:
            work = engine.collect()
        engine.tick(*work)

    benchmark.group = f"engine tick, {batch} answering"
    benchmark.extra_info.update(
        variant="onnxruntime", batch=batch, decode_thread=decode_thread, path="engine"
    )
    with torch.inference_mode():
        for _ in range(5):
            tick()
        benchmark.pedantic(tick, rounds=60, iterations=1, warmup_rounds=2)
        engine.wait_decoded()
    engine.stop()
    benchmark.extra_info["ms_per_session"] = benchmark.stats.stats.median * 1e3 / batch


@pytest.mark.parametrize("variant", ["per-session", "eager", "torchscript", "onnxruntime"])
def test_gil_left_to_other_threads(benchmark, models, variant):
    """How much Python work another thread still gets done while ticks of 16 sessions run back to back.

    ``python_share``: iterations of a pure-Python loop in the main thread during the ticks / iterations without
    them (1.0: the engine thread never holds the GIL; on 2 cores the engine and the loop can run at once).
    """
    batch = 16
    if variant == "per-session":
        tick = per_session_tick(models, 4)
    else:
        tick = tick_function(engine_for(models, variant), batch)

    def count(seconds):
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            n += 1
        return n

    baseline = count(1.0)
    stop = threading.Event()

    def loop():
        with torch.inference_mode():
            while not stop.is_set():
                tick()

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    time.sleep(0.2)
    loaded = count(1.0)
    stop.set()
    worker.join()
    share = loaded / baseline
    benchmark.extra_info.update(variant=variant, python_share=round(share, 3))
    benchmark.group = "GIL: Python throughput left to another thread"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"{variant}: python_share {share:.3f}")
