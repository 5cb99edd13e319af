"""Train the S2S model on codec-token question -> answer pairs.

One CPU process::

    python -m custom_model.train_s2s --preset small --pairs telugu-mini-qa \
        --codec custom_model/checkpoints/codec-small --out runs/s2s-small

GPUs (DDP, or FSDP for ``base``), bf16::

    torchrun --nproc_per_node 8 -m custom_model.train_s2s --preset base --strategy fsdp --precision bf16 ...

``OUT/last.pt`` holds everything needed to resume (model, EMA, optimizer, step, RNG); running the same command again
resumes. SIGTERM/SIGINT save a checkpoint at the next step and exit cleanly. ``OUT/log.jsonl`` has one line per log
step (and TensorBoard event files when ``tensorboard`` is installed). Export the EMA weights for inference with::

    python -m custom_model.train_s2s --out runs/s2s-small --export custom_model/checkpoints/s2s-small
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from custom_model.s2s import S2SConfig, S2SModel, config_preset, delay_codes
from custom_model.s2s.model import masked_cross_entropy
from custom_model.s2s_data import PairLayout, TokenPair, prepare_pairs

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
"""Whole, unsharded state on CPU, whatever the wrapper (plain, DDP, FSDP)."""


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
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--strategy", choices=("ddp", "fsdp"), default="ddp", help="under torchrun")
    p.add_argument(
        "--gradient-checkpointing", action="store_true", help="recompute temporal layers in backward"
    )
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--export", type=Path, default=None, help="write OUT/last.pt's EMA weights here (fp16) and exit"
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
def export(out: Path, target: Path) -> Path:
    """Write the EMA (or raw) weights of ``out/last.pt`` as an fp16 inference checkpoint with its training info."""
    ckpt_path = out / "last.pt"
    if not ckpt_path.exists():
        raise SystemExit(f"No checkpoint to export: {ckpt_path} does not exist")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model = S2SModel(S2SConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["ema"] or ckpt["model"])
    model.config.dropout = 0.0
    model.save_pretrained(target, dtype=torch.float16)
    info = {k: ckpt[k] for k in ("step", "args", "eval", "codec_digest", "elapsed_s") if k in ckpt}
    info["weights"] = "ema" if ckpt["ema"] else "raw"
    (target / "training.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return target


def lr_at(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * progress))


def train(args: argparse.Namespace) -> Path:
    import torch.distributed as dist

    distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    rank, world = 0, 1
    device = torch.device("cpu")
    if distributed:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        rank, world = dist.get_rank(), dist.get_world_size()
        if torch.cuda.is_available():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    if args.threads:
        torch.set_num_threads(args.threads)
    main = rank == 0
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    from custom_model.s2s_data import codec_digest, load_codec

    layout = PairLayout(gap_ms=args.gap_ms, tail_ms=args.tail_ms)
    pairs = prepare_pairs(
        args.pairs,
        args.codec,
        splits=(args.train_split, args.eval_split),
        layout=layout,
        cache_dir=args.cache_dir,
        progress=main and not args.no_progress,
        limit=args.limit,
    )
    train_pairs = [p for p in pairs if p.split == args.train_split]
    eval_pairs = [p for p in pairs if p.split == args.eval_split]
    if not train_pairs:
        raise SystemExit(f"No training pairs in split {args.train_split!r} of {args.pairs!r}")
    card = int(load_codec(args.codec).codebook_size)

    ckpt_path = out / "last.pt"
    resume = torch.load(ckpt_path, map_location="cpu", weights_only=False) if ckpt_path.exists() else None
    if resume is not None:
        config = S2SConfig.from_dict(resume["config"])
    else:
        config = config_preset(args.preset, card=card, gradient_checkpointing=args.gradient_checkpointing)
    torch.manual_seed(args.seed + rank)
    model = S2SModel(config).to(device)
    if resume is not None:
        model.load_state_dict(resume["model"])

    wrapped: torch.nn.Module = model
    if distributed and args.strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in [*model.temporal.layers, *model.depth.layers]:
            fully_shard(block)
        wrapped = fully_shard(model)
    elif distributed:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    # EMA of every floating tensor, laid out like the model's own (sharded under FSDP).
    ema = {k: v.detach().clone().float() for k, v in model.state_dict().items() if v.is_floating_point()}
    ema = ema if args.ema > 0 else None
    if resume is not None and ema is not None and resume.get("ema"):
        for k, v in ema.items():
            v.copy_(_like(resume["ema"][k].to(device), v))

    decay, no_decay = [], []
    for name, p in wrapped.named_parameters():
        (decay if p.dim() >= 2 and "emb" not in name else no_decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
        foreach=True,
    )
    step = 0
    elapsed = 0.0
    rng = random.Random(args.seed * 1000 + rank)
    if resume is not None:
        set_optimizer_state_dict(wrapped, opt, resume["optimizer"], options=FULL)
        step = resume["step"]
        elapsed = resume.get("elapsed_s", 0.0)
        rng.setstate(resume["rng"][rank] if rank < len(resume["rng"]) else resume["rng"][0])
        if main:
            print(f"resumed from {ckpt_path} at step {step}")

    stop = {"flag": False}

    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    writer = None
    if main:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tb"))
        except Exception:  # tensorboard is optional ([train] extra)
            writer = None
    log = (out / "log.jsonl").open("a") if main else None
    digest = codec_digest(args.codec) if main else None
    last_eval: dict = resume.get("eval", {}) if resume is not None else {}

    def save() -> None:
        state = get_model_state_dict(wrapped, options=FULL)
        optim_state = get_optimizer_state_dict(wrapped, opt, options=FULL)
        ema_full = {k: _full(v).cpu() for k, v in ema.items()} if ema else None
        rng_states = [rng.getstate()]
        if distributed:
            gathered = [None] * world
            dist.all_gather_object(gathered, rng.getstate())
            rng_states = gathered
        if not main:
            return
        ckpt = {
            "config": config.to_dict(),
            "model": state,
            "ema": ema_full,
            "optimizer": optim_state,
            "step": step,
            "rng": rng_states,
            "args": vars(args),
            "eval": last_eval,
            "codec_digest": digest,
            "elapsed_s": elapsed,
        }
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(ckpt, tmp)
        tmp.replace(ckpt_path)

    from tqdm import tqdm

    bar = tqdm(total=args.steps, initial=step, disable=not main or args.no_progress, desc="train s2s")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    wrapped.train()
    t_last = time.perf_counter()
    last_step = min(args.steps, args.until) if args.until is not None else args.steps
    while step < last_step and not stop["flag"]:
        t0 = time.perf_counter()
        batch = rng.sample(train_pairs, min(args.batch_size, len(train_pairs)))
        user, steps, mask = (t.to(device) for t in make_batch(batch, config.silence_id, config.context, rng))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        with autocast:
            loss = masked_cross_entropy(wrapped(user, steps), steps, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(wrapped.parameters(), args.grad_clip)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                live = model.state_dict()
                torch._foreach_lerp_(
                    list(ema.values()), [live[k].detach().float() for k in ema], 1 - args.ema
                )
        step += 1
        elapsed += time.perf_counter() - t0
        bar.update(1)
        if main and step % args.log_every == 0:
            rec = {
                "step": step,
                "loss": round(loss.item(), 4),
                "lr": lr_at(step, args),
                "grad_norm": round(float(grad_norm), 3),
                "s_per_step": round((time.perf_counter() - t_last) / args.log_every, 3),
            }
            t_last = time.perf_counter()
            bar.set_postfix(loss=rec["loss"])
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if writer:
                writer.add_scalar("train/loss", rec["loss"], step)
        if step % args.eval_every == 0 and eval_pairs:  # every rank: FSDP forwards are collective
            last_eval = {
                "step": step,
                "test": evaluate(model, eval_pairs, device),
                "train": evaluate(model, train_pairs[: len(eval_pairs)], device),
            }
        if step % args.eval_every == 0 and eval_pairs and main:
            log.write(json.dumps({"eval": last_eval}) + "\n")
            log.flush()
            if writer:
                for split in ("train", "test"):
                    for key, value in last_eval[split].items():
                        writer.add_scalar(f"{split}/{key}", value, step)
        if step % args.save_every == 0:
            save()
    save()
    bar.close()
    if main:
        print(f"{'stopped' if stop['flag'] else 'finished'} at step {step}; checkpoint {ckpt_path}")
    if distributed:
        dist.destroy_process_group()
    return ckpt_path


def _full(t: torch.Tensor) -> torch.Tensor:
    """A full tensor from a possibly sharded one (FSDP's DTensor); collective under FSDP."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _like(full: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``full`` laid out like ``target`` (sharded the same way when ``target`` is a DTensor)."""
    if hasattr(target, "device_mesh"):
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(full, target.device_mesh, target.placements)
    return full


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.export is not None:
        print(f"exported to {export(args.out, args.export)}")
        return 0
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
