"""Benchmark of the harness's own overhead per chunk: ``python -m harness.bench_overhead``.

A backend that does no work (it keeps the input and hands it back, one output chunk per input chunk, at once) is run
in ``fast`` pacing with 20 ms chunks. Everything between the session's start and its last output chunk is then
harness work (chunking, polling, time stamps, event records) plus a few no-op method calls, so
(last output time - start) / (input chunks + output chunks) is the overhead per chunk. Not a test: a figure.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from .backend import Backend, OutputChunk, Session
from .data import Utterance
from .hookspecs import hookimpl


class _NullSession(Session):
    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.ended = False

    def push(self, pcm):
        self.chunks.append(pcm)

    def end_input(self):
        self.ended = True

    def poll(self, timeout=0.0):
        if self.ended and self.chunks:
            return OutputChunk(audio=self.chunks.pop(0))
        return None

    @property
    def done(self):
        return self.ended and not self.chunks


class NullBackend(Backend):
    name = "null-overhead"
    description = "does nothing (harness overhead benchmark only)"

    def open_session(self):
        return _NullSession()


class _Plugin:
    @hookimpl
    def register_backends(self, register):
        register(NullBackend)


def measure(n_utts: int = 20, seconds: float = 10.0, chunk_ms: float = 20.0, out: Path | None = None) -> dict:
    from .plugins import pm
    from .results import load_run
    from .runner import run_benchmark

    rng = np.random.default_rng(0)
    utts = [
        Utterance(
            id=f"o{i}",
            sample_rate=16000,
            duration_s=seconds,
            audio_array=(0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32),
        )
        for i in range(n_utts)
    ]
    plugin = _Plugin()
    pm.register(plugin)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = load_run(
                run_benchmark(
                    ["null-overhead"],
                    utterances=utts,
                    pacing="fast",
                    chunk_ms=chunk_ms,
                    out=out or Path(tmp) / "run",
                    progress=False,
                    save_audio=False,
                )
            )
            per_chunk = []
            for u in utts:
                evs = [e for e in run.events if e.get("u") == u.id]
                start = next(e["t"] for e in evs if e["e"] == "utt_start")
                outs = [e["t"] for e in evs if e["e"] == "out"]
                pushes = sum(1 for e in evs if e["e"] == "push")
                per_chunk.append((outs[-1] - start) / 1e3 / (pushes + len(outs)))
    finally:
        pm.unregister(plugin)
    arr = np.asarray(per_chunk)
    return {
        "chunks_per_utt": int(round(seconds * 1000 / chunk_ms)) * 2,
        "utterances": n_utts,
        "us_per_chunk_p50": float(np.median(arr)),
        "us_per_chunk_mean": float(arr.mean()),
        "us_per_chunk_max": float(arr.max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--utterances", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--chunk-ms", type=float, default=20.0)
    args = ap.parse_args()
    r = measure(args.utterances, args.seconds, args.chunk_ms)
    print(
        f"harness overhead, fast pacing, {args.chunk_ms:g} ms chunks, {r['utterances']} utterances x "
        f"{r['chunks_per_utt']} chunk events: p50 {r['us_per_chunk_p50']:.1f} us/chunk, "
        f"mean {r['us_per_chunk_mean']:.1f}, max {r['us_per_chunk_max']:.1f} (target < 100 us)"
    )


if __name__ == "__main__":
    main()
