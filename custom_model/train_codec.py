"""Train a codec (v1 or v2): L1 + multi-scale mel + adversarial (hinge) + feature matching, gradient-balanced.

One CPU process (v2, the CPU recipe)::

    python -m custom_model.train_codec --preset v2-small --data telugu-mini,telugu-synth --out runs/codec-v2

Many GPUs (DDP, bf16 autocast; ``--strategy fsdp`` shards with FSDP2)::

    torchrun --nproc_per_node 8 -m custom_model.train_codec --preset v2-base --data telugu-synth --out runs/v2-base

``--preset`` picks the codec (``tiny``/``small``/``base`` are v1, ``v2-tiny``/``v2-small``/``v2-base`` are v2) and
its recipe. Re-running the same command resumes from ``OUT/checkpoint.pt`` (SIGTERM/Ctrl-C save first), with the
data stream where it stood; ``--max-steps`` may be raised to go on. Every checkpoint also exports the EMA weights as
a loadable codec to ``OUT/export/``; ``--export-to DIR`` writes that export from the latest checkpoint and exits.
``--batch-size`` is per process; N processes with batch b train exactly like one process with batch N * b.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .codec import CodecConfig, CodecV2Config, codec_from_config, preset_config
from .codec.balancer import Balancer
from .codec.losses import (
    ComplexSTFTLoss,
    MultiScaleMelLoss,
    MultiScaleSTFTDiscriminator,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
)
from .codec.train_data import HELD_OUT_SPLITS, RandomCrops, load_split_audio, load_training_audio, pick_splits
from .codec.v2.quantizer import assign_rows_
from .trainer import EMA, Trainer, TrainerConfig

__all__ = ["HELD_OUT_SPLITS", "load_split_audio", "pick_splits", "main", "train", "export"]


@dataclass(frozen=True)
class CodecTrainConfig:
    """Optimisation and loss recipe. Loss weights are gradient shares under the balancer (see balancer.py)."""

    segment_s: float = 1.0  # training crop length (seconds)
    batch_size: int = 8  # per process
    lr: float = 3e-4
    betas: tuple[float, float] = (0.5, 0.9)
    lr_schedule: str = "constant"  # constant | cosine (to min_lr_ratio * lr at max_steps, after warmup_steps)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    max_steps: int = 100_000
    grad_clip: float = 10.0  # 0 = off
    weight_l1: float = 0.1
    weight_mel: float = 2.0
    weight_adv: float = 4.0
    weight_feat: float = 4.0
    weight_cstft: float = 0.0  # phase-aware complex STFT loss (losses.ComplexSTFTLoss); 0 = off
    cstft_n_ffts: tuple[int, ...] = (256, 512, 1024)
    balancer_ema_decay: float = 0.999
    mel_n_ffts: tuple[int, ...] = (128, 256, 512, 1024, 2048)
    mel_n_mels: tuple[int, ...] = (16, 32, 64, 80, 80)
    discriminator: str = "msstft"  # msstft (EnCodec's) | mpd+mrd (HiFi-GAN's periods + UnivNet's resolutions)
    disc_filters: int = 32  # msstft
    disc_n_ffts: tuple[int, ...] = (1024, 512, 256)  # msstft
    mpd_periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    mpd_channels: tuple[int, ...] = (8, 16, 32, 64)
    mrd_n_ffts: tuple[int, ...] = (256, 512, 1024)
    mrd_channels: int = 16
    adversarial_start_step: int = 0  # steps with reconstruction losses only, before the discriminator joins
    adv_every: int = 1  # the discriminators see every n-th item of the batch (cheaper GAN on a CPU)
    adv_segment_s: float = 0.0  # ... and only its first seconds (0 = the whole crop)
    restart_every: int = (
        0  # v2: restart codes used fewer than restart_min_count times in this many steps (0 = off)
    )
    restart_until: int = 0  # v2: no restarts after this step
    restart_min_count: float = 1.0
    gradient_checkpointing: bool = False  # v2: recompute each block in the backward pass (less memory)
    weight_ema_decay: float = 0.999
    log_every: int = 10
    checkpoint_every: int = 500
    eval_every: int = 1000
    eval_utterances: int = 8

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> CodecTrainConfig:
        if name not in TRAIN_PRESETS:
            raise ValueError(f"Unknown training preset {name!r}; choose one of {', '.join(TRAIN_PRESETS)}")
        return replace(TRAIN_PRESETS[name], **overrides)


_V2_RECIPE = dict(
    lr=1e-3,
    betas=(0.8, 0.99),
    lr_schedule="cosine",
    warmup_steps=200,
    grad_clip=0.0,
    weight_l1=0.1,
    weight_mel=2.0,
    discriminator="mpd+mrd",
    restart_every=100,
    restart_until=4000,
)

TRAIN_PRESETS: dict[str, CodecTrainConfig] = {
    "tiny": CodecTrainConfig(
        segment_s=0.4,
        batch_size=2,
        disc_filters=4,
        mel_n_ffts=(256, 512),
        mel_n_mels=(32, 64),
        disc_n_ffts=(256,),
        log_every=1,
        checkpoint_every=50,
        eval_every=0,
    ),
    "small": CodecTrainConfig(
        segment_s=0.64,
        batch_size=6,
        disc_filters=8,
        disc_n_ffts=(512, 256),
        adversarial_start_step=2000,
        weight_ema_decay=0.995,
        checkpoint_every=250,
        eval_every=500,
        eval_utterances=6,
    ),
    "base": CodecTrainConfig(segment_s=1.0, batch_size=16, disc_filters=32),
    "v2-tiny": CodecTrainConfig(
        **{**_V2_RECIPE, "warmup_steps": 0, "restart_every": 2, "restart_until": 1000},
        segment_s=0.4,
        batch_size=2,
        mel_n_ffts=(256, 512),
        mel_n_mels=(32, 64),
        mpd_periods=(2, 3),
        mpd_channels=(4, 8),
        mrd_n_ffts=(256,),
        mrd_channels=4,
        log_every=1,
        checkpoint_every=50,
        eval_every=0,
    ),
    # The committed codec-v2-small: reconstruction losses only (on one CPU a GAN phase did not pay within the
    # steps we could afford; see its model card), 14k steps of batch 8 x 1 s.
    "v2-small": CodecTrainConfig(
        **_V2_RECIPE,
        segment_s=1.0,
        batch_size=8,
        max_steps=14_000,
        adversarial_start_step=1_000_000,
        weight_ema_decay=0.998,
        checkpoint_every=250,
        eval_every=500,
        eval_utterances=8,
    ),
    "v2-base": CodecTrainConfig(
        **{**_V2_RECIPE, "lr": 5e-4, "restart_until": 20_000},
        segment_s=1.0,
        batch_size=16,
        max_steps=400_000,
        mpd_channels=(32, 64, 128, 256),
        mrd_channels=32,
    ),
}


# -- evaluation / export ------------------------------------------------------------------------------------------
def ema_codec(trainer: Trainer, model: torch.nn.Module, ema: EMA, config: CodecConfig | CodecV2Config):
    """A fresh CPU codec with the EMA weights and current codebooks (collective; returns it on rank 0 only)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    shadow = ema.state_dict()["shadow"]
    if not trainer.is_main:
        return None
    codec = codec_from_config(config.to_dict())
    codec.load_state_dict(state)
    codec.load_state_dict({**codec.state_dict(), **{k: v for k, v in shadow.items()}}, strict=True)
    return codec.eval()


def evaluate(codec: torch.nn.Module, arrays: list[np.ndarray]) -> dict[str, float]:
    """Mean PESQ-WB, STOI, SI-SDR and log-mel distance of offline reconstructions (all codebooks)."""
    from .codec.metrics import all_metrics

    rows = []
    for a in arrays:
        with torch.no_grad():
            y = codec.decode(codec.encode(torch.from_numpy(a)[None, None]))[0, 0, : a.size].numpy()
        rows.append(all_metrics(a, y, codec.sample_rate))
    return {f"dev/{k}": float(np.nanmean([r[k] for r in rows])) for k in rows[0]}


# -- training -----------------------------------------------------------------------------------------------------
def lr_factor(step: int, cfg: CodecTrainConfig) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then constant or cosine down to ``min_lr_ratio``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return 1.0
    if cfg.lr_schedule != "cosine":
        raise ValueError(f"lr_schedule must be constant or cosine, got {cfg.lr_schedule!r}")
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_discriminator(cfg: CodecTrainConfig) -> torch.nn.Module:
    from .codec.discriminators import (
        CombinedDiscriminator,
        MultiPeriodDiscriminator,
        MultiResolutionDiscriminator,
    )

    if cfg.discriminator == "msstft":
        return MultiScaleSTFTDiscriminator(cfg.disc_filters, cfg.disc_n_ffts)
    if cfg.discriminator == "mpd+mrd":
        return CombinedDiscriminator(
            MultiPeriodDiscriminator(cfg.mpd_periods, cfg.mpd_channels),
            MultiResolutionDiscriminator(cfg.mrd_n_ffts, cfg.mrd_channels),
        )
    raise ValueError(f"discriminator must be msstft or mpd+mrd, got {cfg.discriminator!r}")


class CodebookHealth:
    """Code counts between restarts (summed over ranks), codebook perplexity logs, and dead-code restarts (v2)."""

    def __init__(self, quantizer, cfg: CodecTrainConfig, seed: int) -> None:
        self.quantizer, self.cfg = quantizer, cfg
        self.generator = torch.Generator().manual_seed(seed)
        self.log_counts: torch.Tensor | None = None

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def after_forward(self, step: int, ema: EMA) -> dict[str, float]:
        """Account this step's codes; restart dead codes when due; returns restart logs."""
        counts = self.quantizer.last_counts
        if counts is None:
            return {}
        counts = counts.detach().clone()
        distributed = dist.is_available() and dist.is_initialized()
        if distributed:
            dist.all_reduce(counts)
        self.quantizer.add_usage_(counts)
        self.log_counts = counts.cpu() if self.log_counts is None else self.log_counts + counts.cpu()
        cfg = self.cfg
        if not cfg.restart_every or step % cfg.restart_every or step > cfg.restart_until:
            return {}
        candidates = self.quantizer.recent_latents()
        if distributed:
            gathered = []
            for z_e in candidates:
                parts = [torch.empty_like(z_e) for _ in range(dist.get_world_size())]
                dist.all_gather(parts, z_e.contiguous())
                gathered.append(torch.cat(parts))
            candidates = gathered
        candidates = [z.float().cpu() for z in candidates]
        restarted = self.quantizer.restart_dead_codes_(
            self.quantizer.usage.cpu(), candidates, cfg.restart_min_count, self.generator
        )
        for i, (rows, values) in restarted.items():  # the averaged weights restart with the codes
            key = next(k for k in ema.shadow if k.endswith(f"quantizer.layers.{i}.codebook"))
            assign_rows_(ema.shadow[key], rows, values)
        self.quantizer.usage.zero_()
        return {"codebook/restarted": float(sum(r.numel() for r, _ in restarted.values()))}

    def log(self) -> dict[str, float]:
        """Perplexity and share of codes used per codebook since the last log."""
        if self.log_counts is None:
            return {}
        stats = self.quantizer.usage_stats(self.log_counts)
        self.log_counts = None
        return stats


DISC_FIELDS = (
    "discriminator",
    "disc_filters",
    "disc_n_ffts",
    "mpd_periods",
    "mpd_channels",
    "mrd_n_ffts",
    "mrd_channels",
)


def fresh_discriminator(out: str | Path, cfg: CodecTrainConfig) -> tuple[str, ...]:
    """``("disc",)`` when the run's checkpoint holds a discriminator of another shape that was never trained (the
    adversarial phase had not begun), so a resumed run may choose its discriminator; otherwise ``()``."""
    path = Path(out) / "checkpoint.pt"
    if not path.exists():
        return ()
    payload = torch.load(path, map_location="cpu", weights_only=False)
    before = payload.get("extra", {}).get("train_config", {})
    changed = [
        k
        for k in DISC_FIELDS
        if k in before and tuple(np.atleast_1d(before[k])) != tuple(np.atleast_1d(getattr(cfg, k)))
    ]
    if not changed:
        return ()
    if payload["step"] > before.get("adversarial_start_step", 0):
        raise SystemExit(
            f"{path}: the discriminator was trained with {', '.join(f'{k}={before[k]}' for k in changed)}; "
            "it cannot change now (start a new run, or keep those settings)"
        )
    print(
        f"[train] discriminator settings changed ({', '.join(changed)}) before it was trained: new discriminator"
    )
    return ("disc",)


def train(args: argparse.Namespace) -> Path:
    overrides = parse_overrides(args.set, args.preset)
    codec_cfg = preset_config(args.preset, **overrides["codec"])
    train_cfg = CodecTrainConfig.preset(args.preset, **overrides["train"])
    if args.max_steps is not None:
        train_cfg = replace(train_cfg, max_steps=args.max_steps)
    if args.batch_size is not None:
        train_cfg = replace(train_cfg, batch_size=args.batch_size)
    if train_cfg.batch_size % train_cfg.adv_every:
        raise SystemExit(
            f"batch_size {train_cfg.batch_size} must be a multiple of adv_every {train_cfg.adv_every}"
        )
    trainer = Trainer(
        TrainerConfig(
            out_dir=args.out,
            strategy=args.strategy,
            precision=args.precision,
            seed=args.seed,
            cpu_threads=args.threads,
            tensorboard=not args.no_tensorboard,
        )
    )
    sr, v2 = codec_cfg.sample_rate, codec_cfg.version == 2
    datasets = [d for d in args.data.split(",") if d]
    train_audio, dev_audio, lines = load_training_audio(
        datasets,
        sr,
        args.train_split,
        args.dev_split,
        limit=args.limit,
        dev_limit=train_cfg.eval_utterances if trainer.is_main and train_cfg.eval_every else 0,
    )
    if trainer.is_main:
        for line in lines:
            print(f"[data] {line}", file=sys.stderr)
    segment = int(round(train_cfg.segment_s * sr / codec_cfg.hop_length)) * codec_cfg.hop_length
    batches = RandomCrops(
        train_audio,
        segment,
        train_cfg.batch_size,
        seed=args.seed,
        rank=trainer.rank,
        world_size=trainer.world_size,
        n_q=codec_cfg.n_q,
        quantizer_dropout=codec_cfg.quantizer_dropout if v2 else 0.0,
    )

    dev = trainer.device
    torch.manual_seed(args.seed)  # the same initial weights on every rank
    bare = codec_from_config(codec_cfg.to_dict()).to(dev).train()
    disc_bare = build_discriminator(train_cfg).to(dev).train()
    mel_loss = MultiScaleMelLoss(sr, train_cfg.mel_n_ffts, train_cfg.mel_n_mels).to(dev)
    cstft_loss = ComplexSTFTLoss(train_cfg.cstft_n_ffts).to(dev)
    ema = EMA(bare, decay=train_cfg.weight_ema_decay)
    if v2:
        bare.gradient_checkpointing = train_cfg.gradient_checkpointing
    units = [*bare.enc_blocks, *bare.dec_blocks] if v2 else []
    model = trainer.wrap(bare, fsdp_units=units)
    disc = trainer.wrap(disc_bare)
    opt_g = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, betas=train_cfg.betas, weight_decay=0.0)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=train_cfg.lr, betas=train_cfg.betas, weight_decay=0.0)
    balancer = Balancer(
        {
            "l1": train_cfg.weight_l1,
            "mel": train_cfg.weight_mel,
            "adv": train_cfg.weight_adv,
            "feat": train_cfg.weight_feat,
            "cstft": train_cfg.weight_cstft,
        },
        ema_decay=train_cfg.balancer_ema_decay,
    )
    health = CodebookHealth(bare.quantizer, train_cfg, seed=args.seed) if v2 else None
    models, optims = {"codec": model, "disc": disc}, {"codec": opt_g, "disc": opt_d}
    others = {"ema": ema, "balancer": balancer, "data": batches, **({"codebooks": health} if health else {})}
    start_step = trainer.load_checkpoint(
        models, optims, others, skip=fresh_discriminator(args.out, train_cfg)
    )
    meta = {
        "command": " ".join(sys.argv),
        "data": args.data,
        "train_split": args.train_split,
        "preset": args.preset,
        "codec_config": codec_cfg.to_dict(),
        "train_config": asdict(train_cfg),
        "world_size": trainer.world_size,
        "global_batch": train_cfg.batch_size * trainer.world_size,
    }
    if trainer.is_main:
        n_params = sum(p.numel() for p in bare.parameters())
        print(
            f"[train] codec {args.preset}: {n_params / 1e6:.2f} M parameters, {trainer.world_size} process(es), "
            f"{dev.type}, {trainer.precision}, strategy {trainer.strategy}, segment {segment} samples, "
            f"batch {train_cfg.batch_size}/process",
            file=sys.stderr,
        )
    wall_start, wall_before = time.time(), float(getattr(trainer, "resumed_extra", {}).get("wall_s", 0.0))

    def save(step: int) -> None:
        extra = {**meta, "wall_s": wall_before + time.time() - wall_start}
        trainer.save_checkpoint(step, models, optims, others, extra=extra)
        codec = ema_codec(trainer, model, ema, codec_cfg)
        if codec is not None:
            codec.save_pretrained(Path(args.out) / "export", extra={**extra, "step": step, "weights": "ema"})

    last_step = min(train_cfg.max_steps, args.until) if args.until else train_cfg.max_steps
    for step in trainer.progress(range(start_step, last_step), total=train_cfg.max_steps, initial=start_step):
        t0 = time.perf_counter()
        wav, n_q = next(batches)
        wav = wav.to(dev)
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = train_cfg.lr * lr_factor(step, train_cfg)
        adversarial = (
            step >= train_cfg.adversarial_start_step and train_cfg.weight_adv + train_cfg.weight_feat > 0
        )
        with trainer.autocast():
            out = model(wav, n_q=n_q) if v2 else model(wav)
        y = out["wav"].float()
        logs: dict[str, float] = {}
        if adversarial:  # every adv_every-th item (by global index: the same items whatever the world size)
            n_adv = int(train_cfg.adv_segment_s * sr) if train_cfg.adv_segment_s else wav.shape[-1]
            real_adv, fake_adv = wav[:: train_cfg.adv_every, :, :n_adv], y[:: train_cfg.adv_every, :, :n_adv]
        if adversarial:  # discriminator step on the detached reconstruction: real and fake in one forward
            with trainer.autocast():
                logits, _ = disc(torch.cat([real_adv, fake_adv.detach()]))
                n_real = real_adv.shape[0]
                d_loss = hinge_discriminator_loss(
                    [lg[:n_real] for lg in logits], [lg[n_real:] for lg in logits]
                )
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            logs["train/d_hinge"] = d_loss.item()
        losses = {"l1": (y - wav).abs().mean(), "mel": mel_loss(y, wav)}
        if train_cfg.weight_cstft > 0:
            losses["cstft"] = cstft_loss(y, wav)
        if (
            adversarial
        ):  # the generator's view through the (bare) discriminator: no gradient sync needed there
            with trainer.autocast():
                fake_logits, fake_feats = disc_bare(fake_adv)
                with torch.no_grad():
                    _, real_feats = disc_bare(real_adv)
            losses["adv"] = hinge_generator_loss(fake_logits)
            losses["feat"] = feature_matching_loss(real_feats, fake_feats)
        grad, norms = balancer.gradient(losses, y)
        opt_g.zero_grad(set_to_none=True)
        torch.autograd.backward([y, out["commit_loss"]], [grad, torch.ones_like(out["commit_loss"])])
        if train_cfg.grad_clip:
            logs["train/grad_norm"] = float(
                torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
            )
        opt_g.step()
        if adversarial:
            disc.zero_grad(set_to_none=True)  # in case the generator pass left gradients in the discriminator
        ema.update(bare)
        step += 1
        if health is not None:
            logs.update(health.after_forward(step, ema))
        if step % train_cfg.log_every == 0 or step == 1:
            per_rank = {f"train/{k}": v.item() for k, v in losses.items()}
            per_rank["train/commit"] = out["commit_loss"].item()
            if "train/d_hinge" in logs:
                per_rank["train/d_hinge"] = logs["train/d_hinge"]
            logs.update(trainer.mean_across_ranks(per_rank))  # the global batch's losses, as one process logs
            logs.update({f"grad_norm/{k}": v for k, v in norms.items()})
            logs["train/lr"] = train_cfg.lr * lr_factor(step - 1, train_cfg)
            logs["train/step_s"] = time.perf_counter() - t0
            if health is not None:
                logs.update(health.log())
            trainer.log(step, logs)
        stop = trainer.should_stop()
        if stop or step % train_cfg.checkpoint_every == 0 or step == last_step:
            save(step)
        if train_cfg.eval_every and step % train_cfg.eval_every == 0:
            codec = ema_codec(trainer, model, ema, codec_cfg)
            if codec is not None and dev_audio:
                trainer.log(step, evaluate(codec, dev_audio))
        if stop:
            break
    trainer.close()
    return Path(args.out)


def export(run_dir: str, to: str, fp16: bool = False) -> Path:
    """Write the EMA codec of ``run_dir``'s latest checkpoint to ``to`` (config.json + model.pt; v2 weights stored
    as float16 with ``fp16``)."""
    path = Path(run_dir) / "checkpoint.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a train_codec --out folder?")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    extra = payload["extra"]
    codec = codec_from_config(extra["codec_config"])
    codec.load_state_dict(payload["models"]["codec"])
    codec.load_state_dict({**codec.state_dict(), **payload["others"]["ema"]["shadow"]})
    info = {**extra, "step": payload["step"], "weights": "ema" + (" (stored as float16)" if fp16 else "")}
    if fp16 and codec.version == 1:
        raise SystemExit(
            "--export-fp16 is for v2 codecs (v1 keeps its weight-norm parametrisation in float32)"
        )
    out = codec.save_pretrained(to, extra=info, **({"dtype": torch.float16} if fp16 else {}))
    metrics = Path(run_dir) / "metrics.jsonl"
    if metrics.exists():
        (out / "training_curve.md").write_text(
            curve_table(metrics, payload["step"], extra.get("wall_s", 0.0))
        )
    return out


def curve_table(metrics_jsonl: str | Path, step: int, wall_s: float, rows: int = 16) -> str:
    """The training curve as Markdown: mean losses over windows of steps, and the held-out metrics."""
    recs = [json.loads(line) for line in Path(metrics_jsonl).read_text().splitlines() if line.strip()]
    train = [r for r in recs if "train/mel" in r and r["step"] <= step]
    dev = [r for r in recs if "dev/pesq_wb" in r and r["step"] <= step]
    lines = [
        f"Training curve up to step {step} ({wall_s / 3600:.2f} h of wall time).",
        "",
        "| steps | L1 | multi-scale mel | complex STFT | commit | adv (G hinge) | feat | D hinge "
        "| codebook perplexity (of 1024) | codes used |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    if train:
        edges = np.linspace(0, len(train), min(rows, len(train)) + 1).astype(int)
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            w = train[a:b]

            def mean(key: str, w=w, fmt: str = ".4f") -> str:
                vals = [r[key] for r in w if key in r]
                return f"{np.mean(vals):{fmt}}" if vals else "-"

            lines.append(
                f"| {w[0]['step']}-{w[-1]['step']} | {mean('train/l1')} | {mean('train/mel')} "
                f"| {mean('train/cstft')} | {mean('train/commit')} | {mean('train/adv')} | {mean('train/feat')} "
                f"| {mean('train/d_hinge')} | {mean('codebook/perplexity_mean', fmt='.0f')} "
                f"| {mean('codebook/used_mean', fmt='.2f')} |"
            )
    if dev:
        lines += [
            "",
            "Held-out (dev split, EMA weights, offline, all 8 codebooks):",
            "",
            "| step | PESQ-WB | STOI | SI-SDR dB | log-mel dist |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['step']} | {r['dev/pesq_wb']:.3f} | {r['dev/stoi']:.3f} | {r['dev/si_sdr_db']:.2f} "
            f"| {r['dev/log_mel_dist']:.3f} |"
            for r in dev
        ]
    return "\n".join(lines) + "\n"


def parse_overrides(items: list[str], preset: str = "small") -> dict[str, dict[str, Any]]:
    """``--set key=value`` for any field of the preset's codec config or of CodecTrainConfig (values parsed as
    Python literals)."""
    import ast

    codec_fields = {f.name for f in fields(CodecV2Config if preset.startswith("v2-") else CodecConfig)}
    train_fields = {f.name for f in fields(CodecTrainConfig)}
    out: dict[str, dict[str, Any]] = {"codec": {}, "train": {}}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected key=value")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        if key in codec_fields:
            out["codec"][key] = value
        elif key in train_fields:
            out["train"][key] = value
        else:
            raise SystemExit(f"--set {key}: not a field of the {preset} codec config or of CodecTrainConfig")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m custom_model.train_codec", description=__doc__.split("\n")[0])
    p.add_argument(
        "--preset",
        default="small",
        help="codec and recipe: tiny | small | base (v1), v2-tiny | v2-small | v2-base (v2)",
    )
    p.add_argument(
        "--data", default="telugu-synth", help="dataset name(s) or manifest path(s), comma-separated"
    )
    p.add_argument(
        "--out", required=True, help="run folder (checkpoint.pt, export/, metrics.jsonl, tensorboard/)"
    )
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="per process (default: the preset's)")
    p.add_argument(
        "--until", type=int, default=None, help="stop (and save) at this step; the LR follows max_steps"
    )
    p.add_argument("--train-split", default=None, help="default: 'train' if the dataset has one, else all")
    p.add_argument(
        "--dev-split", default=None, help="held-out split for periodic PESQ/STOI (with --train-split)"
    )
    p.add_argument("--limit", type=int, default=None, help="use only the first N training utterances")
    p.add_argument("--strategy", default="auto", choices=["auto", "none", "ddp", "fsdp"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--no-tensorboard", action="store_true")
    p.add_argument(
        "--export-to", default=None, help="export OUT's latest EMA weights to this folder and exit"
    )
    p.add_argument("--export-fp16", action="store_true", help="with --export-to: store v2 weights as float16")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.export_to:
        print(export(args.out, args.export_to, fp16=args.export_fp16))
        return
    train(args)


if __name__ == "__main__":
    main()
