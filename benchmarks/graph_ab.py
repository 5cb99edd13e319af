"""Interleaved A/B of the engine's exported tick graphs: another checkout's against this one, in one process.

Run to run, a 2-core machine drifts by more than a graph change moves a tick (pytest-benchmark runs a minute
apart differed by 15%), so a change to the step or codec graphs is measured here instead: both revisions'
ONNX graphs (``encode`` + ``decode``, as :class:`~custom_model.engine.variants.OnnxRuntimeRunner` exports them for
the committed s2s-small + codec) run tick by tick on the **same** state, the order alternating, and the reported
figure is the median of the paired per-tick ratios ``new / old``. It also says whether the two gave identical
tokens and new keys/values, and the largest difference of their audio::

    git worktree add /tmp/base main
    python benchmarks/graph_ab.py --old-tree /tmp/base --batches 1,16,32

The other checkout exports its graphs in a subprocess (its own code on ``sys.path``) into the shared cache
(``$S2S_BENCH_CACHE/engine``, keyed by each tree's code digest); this one through the engine it steps. Each tick's state is advanced with this tree's
outputs. One ONNX Runtime thread, like the engine's default. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXPORT = """
import sys, torch
sys.path.insert(0, sys.argv[1] + "/benchmarks")
import test_engine_tick as T
from custom_model.codec import Codec
from custom_model.s2s import S2SModel
ck = sys.argv[1] + "/custom_model/checkpoints/s2s-small"
codec, model = Codec.from_pretrained(ck + "/codec"), S2SModel.from_pretrained(ck)
with torch.inference_mode():
    silence = codec.encode(torch.zeros(1, 1, codec.frame_size * 16))[0, :, -1]
print(T.build_engine((codec, model, silence), "onnxruntime").runner.folder)
"""


def export_folder(tree: Path) -> Path:
    """The folder of ``tree``'s exported graphs (exported now if its code has none cached)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(
        [sys.executable, "-c", EXPORT, str(tree)], env=env, cwd=tree, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"graph_ab: exporting {tree}'s graphs failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old-tree", required=True, type=Path, help="checkout of the revision to compare against")
    p.add_argument("--batches", default="1,16,32", help="batch sizes, comma-separated (default 1,16,32)")
    p.add_argument("--ticks", type=int, default=400, help="ticks per batch size and side (default 400)")
    p.add_argument("--warmup", type=int, default=50, help="ticks left out of the figures (default 50)")
    args = p.parse_args(argv)

    import numpy as np
    import onnxruntime as ort
    import torch

    torch.set_num_threads(1)
    old_dir = export_folder(args.old_tree.resolve())
    sys.path.insert(0, str(HERE))
    import test_engine_tick as T

    if any(os.environ.get(f"S2S_ENGINE_BENCH_{k}") for k in ("PRESET", "CHECKPOINT", "DEVICE")):
        raise SystemExit(
            "graph_ab: both sides run the committed s2s-small on the CPU: unset S2S_ENGINE_BENCH_*"
        )
    engine = T.build_engine(T.load_models(), "onnxruntime")  # exports this tree's graphs if none are cached
    new_dir = engine.runner.folder
    st = engine.state

    def session(path: Path):
        o = ort.SessionOptions()
        o.intra_op_num_threads = o.inter_op_num_threads = 1
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])

    sides = {
        name: {kind: session(folder / f"{kind}.onnx") for kind in ("encode", "decode")}
        for name, folder in (("old", old_dir), ("new", new_dir))
    }
    print(f"old: {args.old_tree} ({old_dir.name})  new: {ROOT} ({new_dir.name})")
    if old_dir == new_dir:
        print("graph_ab: both trees export the same graphs (same code digest): nothing to compare")

    def feed(sess, values):
        names = {i.name for i in sess.get_inputs()}
        return {f"in{i}": v.numpy() for i, v in enumerate(values) if f"in{i}" in names}

    for batch in (int(b) for b in args.batches.split(",")):
        for slot in range(batch):
            st.reset(slot, slot)
        gen = torch.Generator().manual_seed(0)
        times: dict[str, list[float]] = {"old": [], "new": []}
        identical, max_diff = True, 0.0
        with torch.inference_mode():
            for tick in range(args.ticks):
                pcm = 0.1 * torch.randn(batch, engine.codec.frame_size, generator=gen)
                inputs = st.step_inputs(pcm, engine.sampling)
                outs = {}
                for name in ("old", "new") if tick % 2 else ("new", "old"):
                    enc, dec = sides[name]["encode"], sides[name]["decode"]
                    t0 = time.perf_counter()
                    step = enc.run(None, feed(enc, inputs))
                    tokens = torch.from_numpy(step[0])
                    frame = torch.cat([st.prev[:batch, :1], tokens[:, 1:]], 1)
                    dec_in = st.decode_inputs(frame)
                    if len(dec.get_inputs()) == len(dec_in) + 1:  # graph version <= 3: a keep mask
                        dec_in = (dec_in[0], torch.ones(batch, dtype=torch.bool), *dec_in[1:])
                    audio = dec.run(None, feed(dec, dec_in))
                    times[name].append(time.perf_counter() - t0)
                    outs[name] = (step, audio)
                (old_step, old_audio), (new_step, new_audio) = outs["old"], outs["new"]
                identical &= all(
                    np.array_equal(a, b) for a, b in zip(old_step[:3], new_step[:3], strict=True)
                )
                max_diff = max(max_diff, float(np.abs(old_audio[0] - new_audio[0]).max()))
                st.commit_step(tuple(torch.from_numpy(x) for x in new_step))
                st.commit_decode(tuple(torch.from_numpy(x) for x in new_audio))
        old_t, new_t = times["old"][args.warmup :], times["new"][args.warmup :]
        ratio = statistics.median(n / o for n, o in zip(new_t, old_t, strict=True))
        print(
            f"batch {batch}: old {statistics.median(old_t) * 1e3:.2f} ms, new {statistics.median(new_t) * 1e3:.2f} ms,"
            f" paired new/old {ratio:.3f}; tokens and new keys/values identical: {identical}; "
            f"largest audio difference {max_diff:.1e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
