"""Parity of a variant against ``eager``, and ``optimize=auto``: the fastest fp32 variant that passes, cached.

Parity drives the reference and the candidate with the same input (tone bursts and silence, two slots with
different audio) for ``steps`` ticks; in the second half codebook 1 is forced to speech (as ``weights=random``
runs do), so a trained model that would only listen to tones still exercises every codebook head and the decoder. The candidate is teacher-forced: after each step both slots continue from
the *reference's* tokens, so one early difference does not make every later step differ and the agreement is a
per-step figure. fp32 variants pass only with every token identical (``agreement == 1.0``); approximate variants
(INT8, bf16, fp16) report their agreement and the largest difference of the decoded audio, and are never chosen
automatically.

``optimize=auto`` checks every variant of :data:`AUTO_CANDIDATES` that can be built here (eager, TorchScript,
ONNX Runtime; ``torch.compile`` takes minutes to build on a small CPU and is left to ``optimize=compile``), times
a tick (encode + decode graphs) at batch 1 and batch ``min(16, max_slots)`` in rounds interleaved over the
candidates (so the drift of a busy machine hits all of them alike), and picks the passing variant with the
smallest sum of the two medians. The decision (every candidate's parity and times, the machine) is written to
``$S2S_BENCH_CACHE/engine/auto-<key>.json``; ``key`` is a digest of the weights, the package's code, the sampling settings, device,
dtype, threads, torch / onnxruntime versions and the CPU model, so a new checkpoint, install or machine decides
again. Delete the file (or set ``S2S_ENGINE_RESELECT=1``) to decide again anyway.
"""

from __future__ import annotations

import json
import os
import platform
import time

import numpy as np
import torch

from .fused_step import FORCE_SPEECH_ID, GRAPH_VERSION
from .slots import SlotState
from .variants import AUTO_CANDIDATES, Runner, VariantUnavailable, cache_root, module_digest, time_ticks


def parity_signal(steps: int, frame_size: int, slots: int = 2, seed: int = 0) -> np.ndarray:
    """``[steps, slots, frame_size]`` float32: per slot, tone bursts (~-12 dBFS) separated by silence."""
    rng = np.random.default_rng(seed)
    out = np.zeros((steps, slots, frame_size), np.float32)
    t = np.arange(steps * frame_size) / 16000.0
    for s in range(slots):
        freq = 180.0 + 70.0 * s
        burst = (np.sin(2 * np.pi * (0.6 + 0.25 * s) * t) > -0.2).astype(np.float32)
        wav = 0.25 * np.sin(2 * np.pi * freq * t) * burst + 0.01 * rng.standard_normal(t.size)
        out[:, s] = wav.astype(np.float32).reshape(steps, frame_size)
    return out


@torch.no_grad()
def parity(engine, reference: Runner, candidate: Runner, steps: int = 200, slots: int = 2) -> dict:
    """Teacher-forced comparison of ``candidate`` with ``reference`` over ``steps`` ticks (see module doc)."""
    fc, model = engine.codec, engine.model
    states = []
    for runner in (reference, candidate):
        st = SlotState(model, fc, slots, engine.device, getattr(runner, "state_dtype", engine.dtype))
        for i in range(slots):
            st.reset(i, 1234 + i)
        states.append(st)
    signal = torch.from_numpy(parity_signal(steps, fc.frame_size, slots)).to(engine.device)
    equal = total = 0
    first_diff = None
    max_audio_diff = 0.0
    with torch.inference_mode():
        for t in range(steps):
            if (
                t == steps // 2
            ):  # the second half speaks: every codebook head and the decoder see speech tokens
                for st in states:
                    st.force[:slots] = FORCE_SPEECH_ID
            results = []
            for runner, st in zip((reference, candidate), states, strict=True):
                tokens, frame = st.commit_step(runner.encode(st.step_inputs(signal[t], engine.sampling)))
                pcm = st.commit_decode(runner.decode(st.decode_inputs(frame)))
                results.append((tokens, pcm))
            (ref_tokens, ref_pcm), (cand_tokens, cand_pcm) = results
            same = int((ref_tokens == cand_tokens).sum())
            equal += same
            total += ref_tokens.numel()
            if first_diff is None and same != ref_tokens.numel():
                first_diff = t
            states[1].prev[:slots] = ref_tokens  # teacher forcing
            max_audio_diff = max(max_audio_diff, float((ref_pcm.float() - cand_pcm.float()).abs().max()))
    agreement = equal / total
    return {
        "variant": candidate.name,
        "steps": steps,
        "slots": slots,
        "token_agreement": round(agreement, 6),
        "identical": agreement == 1.0,
        "first_difference_step": first_diff,
        "max_audio_diff": max_audio_diff,
    }


def machine_key() -> str:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{platform.machine()}|{cpu}|{os.cpu_count()}"


PARITY_STEPS = 200
"""Teacher-forced steps of the parity check ``optimize=auto`` runs for every candidate."""
TIMING_ROUNDS = 25
"""Rounds of tick timings (each round times every candidate once at each batch size; medians are compared)."""


def choose_variant(engine, candidates: tuple[str, ...] | None = None, steps: int | None = None) -> dict:
    """Decide (or read the cached decision of) the fastest fp32 variant that passes parity; see module doc."""
    from .engine import _ort_version, build_graphs

    candidates = candidates or AUTO_CANDIDATES
    steps = steps or PARITY_STEPS

    encode, decode = build_graphs(
        engine.model,
        engine.codec,
        engine.silence_codes,
        "eager",
        engine.temperature,
        engine.top_k,
        engine.dtype,
    )
    extra = "|".join(
        map(
            str,
            (engine.temperature, engine.top_k, engine.device, engine.dtype, engine.threads, engine.max_slots),
        )
    )
    extra += f"|{GRAPH_VERSION}|{torch.__version__}|{_ort_version()}|{machine_key()}|{','.join(candidates)}|{steps}"
    key = module_digest(encode, decode, extra=extra)
    path = cache_root() / f"auto-{key}.json"
    if path.is_file() and not os.environ.get("S2S_ENGINE_RESELECT"):
        try:
            decision = json.loads(path.read_text())
            decision["cached"] = str(path)
            return decision
        except (OSError, json.JSONDecodeError):
            pass
    reference = engine.make_runner("eager")
    big = min(16, engine.max_slots)
    results, timed = [], []
    for name in candidates:
        entry: dict = {"variant": name}
        t0 = time.perf_counter()
        try:
            runner = reference if name == "eager" else engine.make_runner(name)
            state = SlotState(engine.model, engine.codec, big, engine.device, runner.state_dtype)
            args = {b: engine.example_args(b, state) for b in (1, big)}
            runner.prepare({b: a[0] for b, a in args.items()}, {b: a[1] for b, a in args.items()})
            entry["build_s"] = round(time.perf_counter() - t0, 2)
            entry.update(parity(engine, reference, runner, steps=steps))
            timed.append((entry, runner, args))
        except VariantUnavailable as exc:
            entry["unavailable"] = str(exc)
        except Exception as exc:  # a variant that fails to build or run is reported, never chosen
            entry["failed"] = f"{type(exc).__name__}: {exc}"[:500]
        results.append(entry)
    # Timing rounds interleaved over the candidates (as asv does), so drift of a busy machine hits all alike.
    samples = {id(entry): {1: [], big: []} for entry, _, _ in timed}
    for _ in range(TIMING_ROUNDS):
        for entry, runner, args in timed:
            for b in (1, big):
                samples[id(entry)][b].append(time_ticks(runner, *args[b], ticks=1))
    for entry, _, _ in timed:
        entry["tick_ms_b1"] = round(float(np.median(samples[id(entry)][1])), 3)
        entry[f"tick_ms_b{big}"] = round(float(np.median(samples[id(entry)][big])), 3)
        entry["score_ms"] = entry["tick_ms_b1"] + entry[f"tick_ms_b{big}"]
    passing = [e for e in results if e.get("identical")]
    chosen = min(passing, key=lambda e: e["score_ms"])["variant"] if passing else "eager"
    decision = {
        "chosen": chosen,
        "rule": f"fastest fp32 variant with tokens identical to eager over {steps} teacher-forced steps; "
        f"score = tick ms at batch 1 + at batch {big}",
        "candidates": results,
        "machine": machine_key(),
        "torch": torch.__version__,
        "onnxruntime": _ort_version(),
        "decided_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(decision, indent=2))
        os.replace(tmp, path)
    except OSError:
        pass
    return decision
