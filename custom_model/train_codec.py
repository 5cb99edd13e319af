"""Train the codec: L1 + multi-scale mel + MS-STFT discriminator (hinge) + feature matching, gradient-balanced.

One CPU process::

    python -m custom_model.train_codec --preset small --data telugu-synth --out runs/codec-small

Many GPUs (DDP, bf16 autocast; ``--strategy fsdp`` shards with FSDP2)::

    torchrun --nproc_per_node 8 -m custom_model.train_codec --preset base --data telugu-synth --out runs/codec-base

Re-running the same command resumes from ``OUT/checkpoint.pt`` (SIGTERM/Ctrl-C save first). Every checkpoint also
exports the EMA weights as a loadable codec to ``OUT/export/`` (``Codec.from_pretrained(OUT/export)``);
``--export-to DIR`` writes that export from the latest checkpoint and exits.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .codec import Codec, CodecConfig
from .codec.balancer import Balancer
from .codec.losses import (
    MultiScaleMelLoss,
    MultiScaleSTFTDiscriminator,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
)
from .trainer import EMA, Trainer, TrainerConfig


@dataclass(frozen=True)
class CodecTrainConfig:
    """Optimisation and loss recipe. Loss weights are gradient shares under the balancer (see balancer.py)."""

    segment_s: float = 1.0  # training crop length (seconds)
    batch_size: int = 8  # per process
    lr: float = 3e-4
    betas: tuple[float, float] = (0.5, 0.9)
    max_steps: int = 100_000
    grad_clip: float = 10.0  # 0 = off
    weight_l1: float = 0.1
    weight_mel: float = 2.0
    weight_adv: float = 4.0
    weight_feat: float = 4.0
    balancer_ema_decay: float = 0.999
    mel_n_ffts: tuple[int, ...] = (128, 256, 512, 1024, 2048)
    mel_n_mels: tuple[int, ...] = (16, 32, 64, 80, 80)
    disc_filters: int = 32
    disc_n_ffts: tuple[int, ...] = (1024, 512, 256)
    adversarial_start_step: int = 0  # steps with reconstruction losses only, before the discriminator joins
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
}


# -- data ---------------------------------------------------------------------------------------------------------
def load_split_audio(
    data: str, split: str, sample_rate: int, limit: int | None = None
) -> tuple[list[np.ndarray], list[str]]:
    """Audio of one split (None: all but held-out splits) as float32 arrays; unreadable utterances are skipped with
    a message naming them."""
    from harness.audio import AudioError
    from harness.data import load_utterances

    arrays, ids = [], []
    utts = load_utterances(data, split=split)
    if split is None and any(u.split not in HELD_OUT_SPLITS for u in utts):
        utts = [u for u in utts if u.split not in HELD_OUT_SPLITS]
    for utt in utts[:limit]:
        try:
            arrays.append(utt.load_audio(sample_rate))
            ids.append(utt.id)
        except AudioError as exc:
            print(f"[data] skipping {utt.id}: {exc}", file=sys.stderr)
    return arrays, ids


HELD_OUT_SPLITS = ("dev", "validation", "valid", "test")


def pick_splits(data: str) -> tuple[str | None, str | None]:
    """(train split, held-out split): ``train`` and the first of dev/validation/valid/test the dataset has.

    Without a ``train`` split the training split is None: every utterance not in a held-out split (or, if that
    leaves nothing, every utterance, which then overlaps the held-out one; a message says so).
    """
    from harness.data import load_utterances

    splits = {u.split for u in load_utterances(data)}
    held = next((s for s in HELD_OUT_SPLITS if s in splits), None)
    if "train" in splits:
        return "train", held
    if not splits - set(HELD_OUT_SPLITS):
        print(
            f"[data] {data} has no training split: training on all of it, held-out metrics are not held out",
            file=sys.stderr,
        )
    return None, held


class RandomCrops:
    """Endless batches of random ``segment`` crops (utterances picked in proportion to length, random gain)."""

    def __init__(self, arrays: list[np.ndarray], segment: int, batch_size: int, seed: int) -> None:
        if not arrays:
            raise ValueError("no training audio: check --data and --train-split")
        self.arrays, self.segment, self.batch_size = arrays, segment, batch_size
        lengths = np.array([a.size for a in arrays], dtype=np.float64)
        self.p = lengths / lengths.sum()
        self.rng = np.random.default_rng(seed)

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        out = np.zeros((self.batch_size, 1, self.segment), dtype=np.float32)
        for b in range(self.batch_size):
            a = self.arrays[self.rng.choice(len(self.arrays), p=self.p)]
            start = int(self.rng.integers(0, max(1, a.size - self.segment + 1)))
            crop = a[start : start + self.segment]
            peak = float(np.abs(crop).max()) + 1e-6
            gain = min(
                10 ** (self.rng.uniform(-12, 0) / 20) * 0.95 / peak, 10.0
            )  # -12..0 dB below full scale
            out[b, 0, : crop.size] = crop * gain
        return torch.from_numpy(out)


# -- evaluation / export ------------------------------------------------------------------------------------------
def ema_codec(trainer: Trainer, model: torch.nn.Module, ema: EMA, config: CodecConfig) -> Codec | None:
    """A fresh CPU codec with the EMA weights and current codebooks (collective; returns it on rank 0 only)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    shadow = ema.state_dict()["shadow"]
    if not trainer.is_main:
        return None
    codec = Codec(config)
    codec.load_state_dict(state)
    codec.load_state_dict({**codec.state_dict(), **{k: v for k, v in shadow.items()}}, strict=True)
    return codec.eval()


def evaluate(codec: Codec, arrays: list[np.ndarray]) -> dict[str, float]:
    """Mean PESQ-WB, STOI, SI-SDR and log-mel distance of offline reconstructions (all codebooks)."""
    from .codec.metrics import all_metrics

    rows = []
    for a in arrays:
        with torch.no_grad():
            y = codec.decode(codec.encode(torch.from_numpy(a)[None, None]))[0, 0, : a.size].numpy()
        rows.append(all_metrics(a, y, codec.sample_rate))
    return {f"dev/{k}": float(np.nanmean([r[k] for r in rows])) for k in rows[0]}


# -- training -----------------------------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> Path:
    overrides = parse_overrides(args.set)
    codec_cfg = CodecConfig.preset(args.preset, **overrides["codec"])
    train_cfg = CodecTrainConfig.preset(args.preset, **overrides["train"])
    if args.max_steps is not None:
        train_cfg = replace(train_cfg, max_steps=args.max_steps)
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
    sr = codec_cfg.sample_rate
    train_split, held_split = (
        (args.train_split, args.dev_split) if args.train_split else pick_splits(args.data)
    )
    train_audio, _ = load_split_audio(args.data, train_split, sr, limit=args.limit)
    dev_audio = []
    if trainer.is_main and train_cfg.eval_every and held_split:
        dev_audio, _ = load_split_audio(args.data, held_split, sr, limit=train_cfg.eval_utterances)
    if trainer.is_main:
        hours = sum(a.size for a in train_audio) / sr / 3600
        print(
            f"[data] {args.data}: {len(train_audio)} training utterances ({hours:.2f} h, split "
            f"{train_split or 'all'}), {len(dev_audio)} held-out ({held_split})",
            file=sys.stderr,
        )
    segment = int(round(train_cfg.segment_s * sr / codec_cfg.hop_length)) * codec_cfg.hop_length
    batches = RandomCrops(train_audio, segment, train_cfg.batch_size, seed=args.seed * 1000 + trainer.rank)

    dev = trainer.device
    model = Codec(codec_cfg).to(dev).train()
    disc = MultiScaleSTFTDiscriminator(train_cfg.disc_filters, train_cfg.disc_n_ffts).to(dev).train()
    mel_loss = MultiScaleMelLoss(sr, train_cfg.mel_n_ffts, train_cfg.mel_n_mels).to(dev)
    ema = EMA(model, decay=train_cfg.weight_ema_decay)
    model = trainer.wrap(model)
    disc = trainer.wrap(disc)
    opt_g = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, betas=train_cfg.betas, weight_decay=0.0)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=train_cfg.lr, betas=train_cfg.betas, weight_decay=0.0)
    balancer = Balancer(
        {
            "l1": train_cfg.weight_l1,
            "mel": train_cfg.weight_mel,
            "adv": train_cfg.weight_adv,
            "feat": train_cfg.weight_feat,
        },
        ema_decay=train_cfg.balancer_ema_decay,
    )
    models, optims, others = (
        {"codec": model, "disc": disc},
        {"codec": opt_g, "disc": opt_d},
        {"ema": ema, "balancer": balancer},
    )
    start_step = trainer.load_checkpoint(models, optims, others)
    meta = {
        "command": " ".join(sys.argv),
        "data": args.data,
        "train_split": train_split,
        "preset": args.preset,
        "codec_config": codec_cfg.to_dict(),
        "train_config": asdict(train_cfg),
        "world_size": trainer.world_size,
    }
    if trainer.is_main:
        n_params = sum(p.numel() for p in Trainer.unwrap(model).parameters())
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

    for step in trainer.progress(range(start_step, train_cfg.max_steps), initial=start_step):
        t0 = time.perf_counter()
        wav = next(batches).to(dev)
        adversarial = (
            step >= train_cfg.adversarial_start_step and train_cfg.weight_adv + train_cfg.weight_feat > 0
        )
        with trainer.autocast():
            out = model(wav)
        y = out["wav"].float()
        logs: dict[str, float] = {}
        if adversarial:  # discriminator step on the detached reconstruction
            with trainer.autocast():
                real_logits, _ = disc(wav)
                fake_logits, _ = disc(y.detach())
                d_loss = hinge_discriminator_loss(real_logits, fake_logits)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            logs["train/d_hinge"] = d_loss.item()
        losses = {"l1": (y - wav).abs().mean(), "mel": mel_loss(y, wav)}
        if adversarial:
            with trainer.autocast():
                fake_logits, fake_feats = disc(y)
                _, real_feats = disc(wav)
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
            disc.zero_grad(set_to_none=True)  # the generator pass left gradients in the discriminator
        ema.update(Trainer.unwrap(model))
        step += 1
        if step % train_cfg.log_every == 0 or step == 1:
            logs.update({f"train/{k}": v.item() for k, v in losses.items()})
            logs.update({f"grad_norm/{k}": v for k, v in norms.items()})
            logs["train/commit"] = out["commit_loss"].item()
            logs["train/step_s"] = time.perf_counter() - t0
            trainer.log(step, logs)
        stop = trainer.should_stop()
        if stop or step % train_cfg.checkpoint_every == 0 or step == train_cfg.max_steps:
            save(step)
        if train_cfg.eval_every and step % train_cfg.eval_every == 0 and dev_audio:
            codec = ema_codec(trainer, model, ema, codec_cfg)
            if codec is not None:
                trainer.log(step, evaluate(codec, dev_audio))
        if stop:
            break
    trainer.close()
    return Path(args.out)


def export(run_dir: str, to: str) -> Path:
    """Write the EMA codec of ``run_dir``'s latest checkpoint to ``to`` (config.json + model.pt)."""
    path = Path(run_dir) / "checkpoint.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a train_codec --out folder?")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    extra = payload["extra"]
    codec = Codec(CodecConfig.from_dict(extra["codec_config"]))
    codec.load_state_dict(payload["models"]["codec"])
    codec.load_state_dict({**codec.state_dict(), **payload["others"]["ema"]["shadow"]})
    return codec.save_pretrained(to, extra={**extra, "step": payload["step"], "weights": "ema"})


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``--set key=value`` for any CodecConfig or CodecTrainConfig field (values parsed as Python literals)."""
    import ast

    codec_fields = {f.name for f in fields(CodecConfig)}
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
            raise SystemExit(f"--set {key}: not a CodecConfig or CodecTrainConfig field")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m custom_model.train_codec", description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="small", help="tiny | small | base (model and training recipe)")
    p.add_argument("--data", default="telugu-synth", help="dataset name or manifest path")
    p.add_argument(
        "--out", required=True, help="run folder (checkpoint.pt, export/, metrics.jsonl, tensorboard/)"
    )
    p.add_argument("--max-steps", type=int, default=None)
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
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.export_to:
        print(export(args.out, args.export_to))
        return
    train(args)


if __name__ == "__main__":
    main()
