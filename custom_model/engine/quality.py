"""What the approximate variants (INT8, bf16/fp16) change: token agreement, PESQ against eager, DNSMOS.

    python -m custom_model.engine.quality --variants int8,onnxruntime-int8 --data telugu-mini-qa --split test \\
        --limit 10 --out reports/engine/quantised.json

For each variant: the teacher-forced token agreement of :func:`custom_model.engine.select.parity` (200 steps),
then every question of the data is answered once by ``eager`` and once by the variant (greedy, in-process, input
as fast as the engine takes it); per answer: whether the tokens' audio is identical, PESQ-WB of the variant's
answer against eager's (the same length; eager's answer is the reference), and DNSMOS OVRL of both. The committed
model's answers are short and its codec far from transparent, so PESQ here measures the change a variant makes,
not quality.
"""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

import numpy as np
import torch


def answer(engine, audio: np.ndarray, policy) -> np.ndarray:
    """One greedy turn through ``engine`` (started), input pushed at once; the concatenated answer audio."""
    chunks: list[np.ndarray] = []
    finished = threading.Event()

    def emit(kind, payload):
        if kind == "audio":
            chunks.append(payload)
        elif kind in ("done", "error"):
            finished.set()

    session = engine.open(policy, emit)
    session.push(audio)
    session.end_input()
    if not finished.wait(300):
        raise TimeoutError(
            f"the engine ({engine.variant}) did not finish a turn within 300 s; engine error: {engine.error!r}, "
            f"ticks {engine.ticks}, live {len(engine.live)}, waiting {len(engine.waiting)}"
        )
    session.close()
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--s2s", default=str(Path(__file__).resolve().parents[1] / "checkpoints" / "s2s-small")
    )
    parser.add_argument("--variants", default="int8,onnxruntime-int8")
    parser.add_argument("--data", default="telugu-mini-qa")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument(
        "--max-answer-frames", type=int, default=150, help="cut answers after this many 20 ms frames"
    )
    parser.add_argument("--out", default="reports/engine/quantised.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from custom_model.codec import Codec
    from custom_model.s2s import S2SModel
    from harness.data import load_utterances
    from harness.metrics.nonintrusive import dnsmos
    from harness.metrics.reference import pesq_wb

    from .codec_api import frame_codec
    from .engine import Engine, TurnPolicy
    from .select import parity

    s2s = Path(args.s2s)
    codec = Codec.from_pretrained(s2s / "codec")
    model = S2SModel.from_pretrained(s2s)
    with torch.inference_mode():
        silence = codec.encode(torch.zeros(1, 1, codec.frame_size * 16))[0, :, -1]
    fc = frame_codec(codec)
    utts = load_utterances(args.data, split=args.split, limit=args.limit)
    audios = [u.load_audio(16000) for u in utts]
    policy = TurnPolicy(
        end_silence_frames=2, max_answer_frames=args.max_answer_frames, max_wait_frames=150, seed=0
    )
    eager = Engine(model, fc, silence, optimize="eager", max_slots=2).start()
    reference = [answer(eager, a, policy) for a in audios]
    report = {"data": args.data, "split": args.split, "n": len(utts), "variants": []}
    for name in [v for v in args.variants.split(",") if v]:
        engine = Engine(model, fc, silence, optimize=name, max_slots=2)
        engine.prepare()
        entry = {"variant": name, **parity(eager, eager.runner, engine.runner, steps=200)}
        engine.start()
        rows = []
        for utt, audio, ref in zip(utts, audios, reference, strict=True):
            got = answer(engine, audio, policy)
            row = {"utt": utt.id, "eager_s": ref.size / 16000, "variant_s": got.size / 16000}
            row["identical_audio"] = bool(ref.size == got.size and np.allclose(ref, got, atol=1e-4))
            n = min(ref.size, got.size)
            if n >= 8000:
                row["pesq_vs_eager"] = pesq_wb(ref[:n], got[:n], 16000)
            for key, wav in (("dnsmos_eager", ref), ("dnsmos_variant", got)):
                if wav.size >= 8000:
                    row[key] = dnsmos(wav, 16000).get("ovrl")
            rows.append(row)
        engine.stop()

        def mean(key, rows=rows):
            vals = [r[key] for r in rows if r.get(key) is not None]
            return round(float(np.mean(vals)), 3) if vals else None

        entry.update(
            answers=rows,
            identical_answers=sum(r["identical_audio"] for r in rows),
            pesq_vs_eager_mean=mean("pesq_vs_eager"),
            dnsmos_eager_mean=mean("dnsmos_eager"),
            dnsmos_variant_mean=mean("dnsmos_variant"),
        )
        report["variants"].append(entry)
        print(
            f"{name}: token agreement {entry['token_agreement']:.3f}, identical answers "
            f"{entry['identical_answers']}/{len(rows)}, PESQ vs eager {entry['pesq_vs_eager_mean']}, "
            f"DNSMOS OVRL eager {entry['dnsmos_eager_mean']} -> {entry['dnsmos_variant_mean']}"
        )
    eager.stop()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
