"""Train the S2S model on codec-token question -> answer pairs.

One CPU process::

    python -m custom_model.train_s2s --preset small --pairs telugu-mini-qa \
        --codec custom_model/checkpoints/codec-small --out runs/s2s-small

GPUs (DDP, or FSDP for ``base``), bf16::

    torchrun --nproc_per_node 8 -m custom_model.train_s2s --preset base --strategy fsdp --precision bf16 ...

The loop is ours; the chores (devices, DDP/FSDP, bf16 autocast, checkpoints, EMA, SIGTERM, logs, progress) are the
shared :mod:`custom_model.trainer`'s. ``OUT/checkpoint.pt`` holds everything needed to resume (model, EMA,
optimizer, step, the batch sampler's RNG); running the same command again resumes. SIGTERM/SIGINT save a checkpoint
at the next step and exit cleanly. ``OUT/metrics.jsonl`` has one line per log step (and TensorBoard event files when
``tensorboard`` is installed). Export the EMA weights for inference with::

    python -m custom_model.train_s2s --out runs/s2s-small --export custom_model/checkpoints/s2s-small
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from custom_model.s2s import S2SConfig, S2SModel, config_preset, delay_codes
from custom_model.s2s.model import masked_cross_entropy
from custom_model.s2s_data import PairLayout, TokenPair, prepare_pairs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m custom_model.train_s2s", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--out", required=True, type=Path, help="run folder (checkpoints, logs); resumed if it exists"
    )
    p.add_argument("--preset", default="small", help="model preset: tiny, small, base")
    p.add_argument(
        "--pairs", default="telugu-mini-qa", help="dataset of question -> answer pairs (name or manifest)"
    )
    p.add_argument(
        "--codec", type=Path, default=Path("custom_model/checkpoints/codec-small"), help="codec checkpoint"
    )
    p.add_argument("--train-split", default="train")
    p.add_argument("--eval-split", default="test")
    p.add_argument("--limit", type=int, default=None, help="use only the first N pairs per split")
    p.add_argument(
        "--gap-ms", type=float, default=PairLayout.gap_ms, help="silence between question and answer"
    )
    p.add_argument("--tail-ms", type=float, default=PairLayout.tail_ms, help="silence after the answer")
    p.add_argument(
        "--trim-silence",
        action="store_true",
        help="count the gap from the question's last audible sample and cut the answer's leading silence",
    )
    p.add_argument(
        "--cache-dir", type=Path, default=Path(".cache/s2s-tokens"), help="where codec tokens are cached"
    )
    p.add_argument("--steps", type=int, default=20000, help="total optimizer steps")
    p.add_argument(
        "--until",
        type=int,
        default=None,
        help="stop (and save) at this step; the LR schedule follows --steps",
    )
    p.add_argument("--batch-size", type=int, default=8, help="pairs per step per process")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=200, help="linear warm-up steps")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay of the exported weights (0 = no EMA)")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto: bf16 on CUDA, fp32 on CPU",
    )
    p.add_argument(
        "--strategy", choices=("auto", "none", "ddp", "fsdp"), default="auto", help="auto: DDP under torchrun"
    )
    p.add_argument(
        "--gradient-checkpointing", action="store_true", help="recompute temporal layers in backward"
    )
    p.add_argument(
        "--dropout", type=float, default=None, help="override the preset's dropout (new runs only)"
    )
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--export", type=Path, default=None, help="write OUT/checkpoint.pt's EMA weights here (fp16) and exit"
    )
    return p


# -- data ----------------------------------------------------------------------------------------------------------
def make_batch(
    pairs: list[TokenPair], silence_id: int, max_frames: int, rng: random.Random
) -> tuple[torch.Tensor, ...]:
    """Stack pairs into ``(user, system_steps, mask)``; conversations longer than ``max_frames`` are cropped at random."""
    crops = []
    for p in pairs:
        total = p.user.shape[1]
        start = rng.randrange(0, total - max_frames + 1) if total > max_frames else 0
        crops.append((p.user[:, start : start + max_frames], p.system[:, start : start + max_frames]))
    length = max(u.shape[1] for u, _ in crops)
    n_q = crops[0][0].shape[0]
    user = torch.zeros(len(crops), n_q, length, dtype=torch.long)
    system = torch.full((len(crops), n_q, length), silence_id, dtype=torch.long)
    mask = torch.zeros(len(crops), length, dtype=torch.bool)
    for i, (u, s) in enumerate(crops):
        user[i, :, : u.shape[1]] = torch.from_numpy(u.astype(np.int64))
        system[i, :, : s.shape[1]] = torch.from_numpy(s.astype(np.int64))
        mask[i, : u.shape[1]] = True
    return user, delay_codes(system, pad_id=silence_id), mask


@torch.no_grad()
def evaluate(model: S2SModel, pairs: list[TokenPair], device, batch_size: int = 8) -> dict[str, float]:
    """Teacher-forced loss, and codebook-1 accuracy on answer frames and on the answer's first frame (timing)."""
    model.eval()
    c = model.config
    losses, correct, total, onset_hits = [], 0, 0, 0
    rng = random.Random(0)
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i : i + batch_size]
        user, steps, mask = (t.to(device) for t in make_batch(chunk, c.silence_id, c.context, rng))
        losses.append(model.loss(user, steps, mask).item() * len(chunk))
        pred = model(user, steps).argmax(-1)[:, :, 0]  # [B, T] codebook 1
        for j, p in enumerate(chunk):
            a, b = p.answer_start, min(p.answer_end, steps.shape[-1])
            correct += (pred[j, a:b] == steps[j, 0, a:b]).sum().item()
            total += max(b - a, 0)
            silent_before = (pred[j, :a] == c.silence_id).all().item()
            onset_hits += int(silent_before and pred[j, a].item() != c.silence_id)
    model.train()
    n = max(len(pairs), 1)
    return {"loss": sum(losses) / n, "cb1_answer_acc": correct / max(total, 1), "onset_acc": onset_hits / n}


# -- checkpoints ---------------------------------------------------------------------------------------------------
class _RandomState:
    """The batch sampler's ``random.Random`` as a checkpointable object (a resumed run draws the same batches)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def state_dict(self) -> dict:
        return {"state": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        version, internal, gauss = state["state"]
        self.rng.setstate((version, tuple(internal), gauss))


def export(out: Path, target: Path) -> Path:
    """Write the EMA weights of ``out/checkpoint.pt`` as an fp16 inference checkpoint plus ``training.json``."""
    from custom_model.trainer import CHECKPOINT_NAME

    ckpt_path = out / CHECKPOINT_NAME
    if not ckpt_path.exists():
        raise SystemExit(f"No checkpoint to export: {ckpt_path} does not exist")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    extra = ckpt["extra"]
    model = S2SModel(S2SConfig.from_dict({**extra["config"], "dropout": 0.0}))
    model.load_state_dict(ckpt["models"]["model"])
    ema = ckpt["others"].get("ema")
    if ema:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(ema["shadow"][name])
    model.save_pretrained(target, dtype=torch.float16)
    info = {"step": ckpt["step"], "weights": "ema" if ema else "raw"}
    info.update({k: v for k, v in extra.items() if k != "config"})
    (target / "training.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return target


def lr_at(step: int, args) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to ``min_lr`` at ``steps``."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * progress))


def train(args: argparse.Namespace) -> Path:
    """Train (or resume) in ``args.out``; returns the checkpoint path."""
    from custom_model.s2s_data import codec_digest, load_codec
    from custom_model.trainer import EMA, Trainer, TrainerConfig

    trainer = Trainer(
        TrainerConfig(
            out_dir=str(args.out),
            strategy=args.strategy,
            precision=args.precision,
            seed=args.seed,
            cpu_threads=args.threads,
        )
    )
    layout = PairLayout(gap_ms=args.gap_ms, tail_ms=args.tail_ms, trim_silence=args.trim_silence)
    if trainer.distributed and not trainer.is_main:
        torch.distributed.barrier()  # rank 0 encodes the pairs and fills the cache; the others then read it
    pairs = prepare_pairs(
        args.pairs,
        args.codec,
        splits=(args.train_split, args.eval_split),
        layout=layout,
        cache_dir=args.cache_dir,
        progress=trainer.is_main and not args.no_progress,
        limit=args.limit,
    )
    if trainer.distributed and trainer.is_main:
        torch.distributed.barrier()
    train_pairs = [p for p in pairs if p.split == args.train_split]
    eval_pairs = [p for p in pairs if p.split == args.eval_split]
    if not train_pairs:
        raise SystemExit(f"No training pairs in split {args.train_split!r} of {args.pairs!r}")

    config_file = Path(args.out) / "config.json"
    if config_file.exists():  # resuming: the run's own architecture, whatever --preset says now
        config = S2SConfig.from_dict(json.loads(config_file.read_text()))
    else:
        card = int(load_codec(args.codec).codebook_size)
        overrides = {} if args.dropout is None else {"dropout": args.dropout}
        config = config_preset(
            args.preset, card=card, gradient_checkpointing=args.gradient_checkpointing, **overrides
        )
        if trainer.is_main:
            config_file.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    torch.manual_seed(args.seed)  # the same initial weights on every rank, however the data was prepared
    model = S2SModel(config).to(trainer.device)
    ema = EMA(model, decay=args.ema) if args.ema > 0 else None
    wrapped = trainer.wrap(model, fsdp_units=[*model.temporal.layers, *model.depth.layers])

    decay, no_decay = [], []
    for name, p in wrapped.named_parameters():
        (decay if p.dim() >= 2 and "emb" not in name else no_decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
        foreach=True,
    )
    # One stream of global batches, the same on every rank; each rank takes its slice (exactly what one process
    # with the whole global batch would see, so checkpoints move between world sizes).
    rng = random.Random(args.seed * 1000)
    global_batch = args.batch_size * trainer.world_size
    if global_batch > len(train_pairs):
        raise SystemExit(
            f"--batch-size {args.batch_size} x {trainer.world_size} processes = {global_batch} pairs per step, but "
            f"there are only {len(train_pairs)} training pairs: lower --batch-size"
        )
    models, optims = {"model": wrapped}, {"model": opt}
    others = {"rng": _RandomState(rng), **({"ema": ema} if ema else {})}
    start = trainer.load_checkpoint(models, optims, others)
    extra = {
        "config": config.to_dict(),
        "args": vars(args),
        "codec_digest": codec_digest(args.codec),
        "pairs": {"train": len(train_pairs), "test": len(eval_pairs)},
        "eval": getattr(trainer, "resumed_extra", {}).get("eval", {}),
    }

    last_step = min(args.steps, args.until) if args.until is not None else args.steps
    wrapped.train()
    t_last = time.perf_counter()
    done = start
    for step in trainer.progress(range(start, last_step), total=args.steps, initial=start, desc="train s2s"):
        user, steps, mask = make_batch(
            rng.sample(train_pairs, global_batch), config.silence_id, config.context, rng
        )
        global_tokens = mask.sum().item()
        mine = slice(trainer.rank * args.batch_size, (trainer.rank + 1) * args.batch_size)
        user, steps, mask = (t[mine] for t in (user, steps, mask))
        length = int(mask.any(dim=0).nonzero().max()) + 1  # drop the padding only other ranks' pairs need
        user, steps, mask = (t[..., :length].to(trainer.device) for t in (user, steps, mask))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        with trainer.autocast():
            local_mean = masked_cross_entropy(wrapped(user, steps), steps, mask)
        # The mean over the global batch's tokens: DDP/FSDP average gradients over ranks, hence the world size.
        loss = local_mean * (mask.sum().item() * trainer.world_size / global_tokens)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(wrapped.parameters(), args.grad_clip)
        opt.step()
        if ema is not None:
            ema.update(model)
        done = step + 1
        if done % args.log_every == 0:
            now = time.perf_counter()
            global_loss = trainer.mean_across_ranks({"loss": loss.item()})["loss"]
            trainer.log(
                done,
                {
                    "train/loss": global_loss,
                    "train/lr": lr_at(step, args),
                    "train/grad_norm": float(grad_norm),
                    "train/s_per_step": (now - t_last) / args.log_every,
                },
            )
            t_last = now
        if eval_pairs and done % args.eval_every == 0:  # every rank: FSDP forwards are collective
            extra["eval"] = {
                "step": done,
                "test": evaluate(model, eval_pairs, trainer.device),
                "train": evaluate(model, train_pairs[: len(eval_pairs)], trainer.device),
            }
            trainer.log(
                done, {f"eval_{s}/{k}": v for s in ("train", "test") for k, v in extra["eval"][s].items()}
            )
        stop = trainer.should_stop()
        if stop or done % args.save_every == 0 or done == last_step:
            trainer.save_checkpoint(done, models, optims, others, extra=extra)
        if stop:
            break
    trainer.close()
    if trainer.is_main:
        print(f"stopped at step {done}" if trainer.stop_requested else f"reached step {done}")
    return trainer.checkpoint_path


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.export is not None:
        print(f"exported to {export(args.out, args.export)}")
        return 0
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
