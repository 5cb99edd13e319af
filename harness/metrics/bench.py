"""Speed of the metrics: seconds of wall time per minute of audio scored.

``python -m harness.metrics.bench --data synthetic-clips --limit 24``
``python -m harness.metrics.bench --data telugu-mini --split test``

Each utterance's audio is the reference; the scored "output" is a degraded copy (white noise at 20 dB SNR, delayed
by 40 ms, so alignment has work to do). Two measurements:

1. per metric, in this process after a warm-up (models loaded, librosa/numba compiled): the time each metric adds,
   summed over the clips (the four DNSMOS scores share one model pass and are reported as ``dnsmos``; ``align`` is
   the resampling + delay search shared by the reference metrics);
2. all non-ASR metrics together through the process pool (``--workers``, default 2), wall clock, once including
   the pool's start-up (spawn, imports, model loading, warm-up) and once more on a warm pool.

Not a test: the figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict

import numpy as np

from .core import NEEDS_TRANSCRIPT, Sample

DEFAULT_METRICS = "pesq,stoi,estoi,si_sdr,log_mel_distance,dnsmos,speaker_sim"


def make_samples(data: str, split: str | None, limit: int | None, seed: int = 0) -> list[Sample]:
    """(reference = input, output = noisy delayed copy) samples from a data set, at each clip's own rate."""
    from ..data import load_utterances

    rng = np.random.default_rng(seed)
    samples = []
    for utt in load_utterances(data, split=split, limit=limit):
        sr = int(utt.sample_rate or 16000)
        x = utt.load_audio(sr)
        noise = rng.standard_normal(x.size).astype(np.float32)
        noise *= np.sqrt(np.mean(x**2) / max(np.mean(noise**2), 1e-12)) * 10 ** (-20 / 20)
        y = np.concatenate([np.zeros(int(0.04 * sr), np.float32), x + noise])
        samples.append(Sample(utt.id, audio=y, sr=sr, ref_audio=x, ref_sr=sr, ref_text=utt.text))
    return samples


def per_metric_seconds(samples: list[Sample], metrics) -> tuple[dict[str, float], dict[str, float]]:
    """(wall, CPU) seconds each metric (group) adds over all samples, in this process, after a warm-up."""
    from .builtin import aligned_pair
    from .scoring import _warm_sample

    warm = _warm_sample()
    for m in metrics:
        m.compute(warm)
    wall: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)
    for s in samples:
        s.cache.clear()
        if s.ref_audio is not None:
            t0, c0 = time.perf_counter(), time.process_time()
            aligned_pair(s)
            wall["align"] += time.perf_counter() - t0
            cpu["align"] += time.process_time() - c0
        for m in metrics:
            t0, c0 = time.perf_counter(), time.process_time()
            m.compute(s)
            wall[m.group or m.name] += time.perf_counter() - t0
            cpu[m.group or m.name] += time.process_time() - c0
        s.cache.clear()
    return dict(wall), dict(cpu)


def pool_seconds(samples: list[Sample], metrics, workers: int) -> tuple[float, float, float]:
    """Wall seconds for all metrics through a fresh pool (start-up included), through the same pool again, and
    the CPU seconds its worker processes used over both passes."""
    import multiprocessing as mp
    import resource
    from concurrent.futures import ProcessPoolExecutor

    from .scoring import _init_worker, _score_in_worker

    names = [m.name for m in metrics]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(names,)
    ) as pool:
        list(pool.map(_score_in_worker, samples, chunksize=1))
        cold = time.perf_counter() - t0
        t1 = time.perf_counter()
        list(pool.map(_score_in_worker, samples, chunksize=1))
        warm = time.perf_counter() - t1
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return cold, warm, (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.metrics.bench", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data", default="synthetic-clips", help="data set name or manifest (default synthetic-clips)"
    )
    p.add_argument("--split", default=None)
    p.add_argument("--limit", type=int, default=24)
    p.add_argument("--metrics", default=DEFAULT_METRICS, help=f"default: {DEFAULT_METRICS}")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--asr-judge", default=None, metavar="SPEC", help="also time this judge's transcription")
    p.add_argument(
        "--json", dest="json_out", default=None, metavar="FILE", help="also write the figures here"
    )
    args = p.parse_args(argv)

    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)  # as in the pool's workers
    except ModuleNotFoundError:
        pass
    from . import get_metrics

    metrics = [m for m in get_metrics(args.metrics) if NEEDS_TRANSCRIPT not in m.needs]
    samples = make_samples(args.data, args.split, args.limit)
    if not samples:
        print(f"no utterances in {args.data} (split {args.split})", file=sys.stderr)
        return 2
    audio_min = sum(s.ref_audio.size / s.ref_sr for s in samples) / 60.0
    print(
        f"{len(samples)} clips, {audio_min * 60:.1f} s of audio ({args.data}"
        f"{', split ' + args.split if args.split else ''}); seconds of wall time per minute of audio"
    )
    wall, cpu = per_metric_seconds(samples, metrics)
    rows = {k: v / audio_min for k, v in wall.items()}
    cpu_rows = {k: v / audio_min for k, v in cpu.items()}
    if args.asr_judge:
        from .judges import create_judge

        judge = create_judge(args.asr_judge)
        judge.transcribe(samples[0].audio, samples[0].sr)  # load + warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        for s in samples:
            judge.transcribe(s.audio, s.sr)
        key = f"asr judge ({args.asr_judge})"
        rows[key] = (time.perf_counter() - t0) / audio_min
        cpu_rows[key] = (time.process_time() - c0) / audio_min
    nan = float("nan")
    cold, warm, pool_cpu = (
        pool_seconds(samples, metrics, args.workers) if args.workers > 1 else (nan, nan, nan)
    )
    print("| metric | wall s per audio minute (1 process) | CPU s per audio minute |")
    print("|---|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {v:.2f} | {cpu_rows[k]:.2f} |")
    total = sum(v for k, v in rows.items() if not k.startswith("asr"))
    total_cpu = sum(v for k, v in cpu_rows.items() if not k.startswith("asr"))
    print(f"| **all non-ASR, 1 process** | **{total:.2f}** | {total_cpu:.2f} |")
    print(
        f"| **all non-ASR, pool of {args.workers}, incl. start-up** | **{cold / audio_min:.2f}** | "
        f"{pool_cpu / audio_min:.2f} (both pool passes) |"
    )
    print(f"| **all non-ASR, pool of {args.workers}, warm** | **{warm / audio_min:.2f}** | |")
    print(f"load average while measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(
                {
                    "data": args.data,
                    "split": args.split,
                    "n": len(samples),
                    "audio_s": audio_min * 60,
                    "s_per_audio_min": rows,
                    "cpu_s_per_audio_min": cpu_rows,
                    "pool_cold": cold / audio_min,
                    "pool_warm": warm / audio_min,
                    "workers": args.workers,
                },
                fh,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
