"""Training machinery shared by our models: one CPU process up to many GPUs, with nothing hidden.

Not a framework: your script owns the loop; :class:`Trainer` only does the chores every loop needs.

- **Devices and precision**: one CPU process (``python -m ...``) or one process per GPU under ``torchrun``
  (``WORLD_SIZE`` set). ``precision="auto"`` is bf16 autocast on CUDA and fp32 on CPU.
- **Wrapping**: ``strategy="ddp"`` (DistributedDataParallel) or ``"fsdp"`` (FSDP2 ``fully_shard``, optionally per
  block first, e.g. transformer layers), ``"auto"`` = DDP when distributed, nothing otherwise.
- **Checkpoints** with model, optimizer and any ``state_dict``-able objects (EMA, schedulers, balancers); written
  atomically (temp file + rename) so a kill mid-write never corrupts the last good one; full (unsharded) state
  dicts, so a checkpoint written by 8 GPUs resumes on 1 CPU and vice versa.
- **SIGTERM/SIGINT-safe**: the first signal sets :attr:`Trainer.stop_requested`; :meth:`Trainer.should_stop` agrees
  on it across ranks, and the loop saves and exits cleanly after the same step everywhere.
- **Weight EMA** (:class:`EMA`), **TensorBoard** (if installed) plus a ``metrics.jsonl`` log, a **tqdm** progress bar.

How to use it for another model (the whole pattern)::

    from custom_model.trainer import EMA, Trainer, TrainerConfig

    trainer = Trainer(TrainerConfig(out_dir="runs/x", strategy="auto", precision="auto"))
    model = MyModel(cfg).to(trainer.device)
    ema = EMA(model, decay=0.999)                       # before wrapping, on the bare module
    model = trainer.wrap(model, fsdp_units=[*model.blocks])  # DDP/FSDP/none, per the config and environment
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    models, optims, others = {"model": model}, {"model": opt}, {"ema": ema}
    step = trainer.load_checkpoint(models, optims, others)  # 0 when starting fresh
    for step in trainer.progress(range(step, max_steps), initial=step):
        with trainer.autocast():
            loss = model(next(batches))
        loss.backward(); opt.step(); opt.zero_grad(); ema.update(trainer.unwrap(model))
        trainer.log(step + 1, {"train/loss": loss.item()})
        stop = trainer.should_stop()                    # every rank's answer is the same (one tiny all-reduce)
        if stop or (step + 1) % 500 == 0:
            trainer.save_checkpoint(step + 1, models, optims, others)
        if stop:
            break
    trainer.close()
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainerConfig:
    out_dir: str
    strategy: str = "auto"  # auto | none | ddp | fsdp
    precision: str = "auto"  # auto | fp32 | bf16
    seed: int = 0
    cpu_threads: int | None = None  # torch.set_num_threads on CPU (None: leave torch's default)
    tensorboard: bool = True


class EMA:
    """Exponential moving average of a module's floating-point parameters; buffers are copied as they are.

    ``update`` after each optimizer step: ``ema = decay * ema + (1 - decay) * param``. With FSDP the shadow
    tensors are sharded like the parameters; :meth:`state_dict` gathers them (call it on every rank).
    """

    def __init__(self, module: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = {
            k: p.detach().clone().float() for k, p in module.named_parameters() if p.is_floating_point()
        }
        self.num_updates = 0

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.num_updates += 1
        # Warm-up as in timm/audiocraft: early on the average follows the weights more closely.
        decay = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for k, p in module.named_parameters():
            if k in self.shadow:
                if hasattr(p, "device_mesh") and not hasattr(self.shadow[k], "device_mesh"):
                    self.shadow[k] = _like(
                        self.shadow[k], p
                    ).float()  # the model was sharded after EMA(model)
                self.shadow[k].lerp_(p.detach().float(), 1.0 - decay)

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> nn.Module:
        """Load the averaged parameters into ``module`` (e.g. a fresh copy of the model for export/eval)."""
        for k, p in module.named_parameters():
            if k in self.shadow:
                p.copy_(self.shadow[k].to(p.dtype))
        return module

    def state_dict(self) -> dict[str, Any]:
        return {
            "decay": self.decay,
            "num_updates": self.num_updates,
            "shadow": {k: _full(v) for k, v in self.shadow.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.num_updates = int(state["num_updates"])
        for k, v in state["shadow"].items():
            if k not in self.shadow:
                raise KeyError(f"EMA checkpoint has parameter {k!r} that the model does not have")
            self.shadow[k] = (
                _like(v.float(), self.shadow[k])
                if hasattr(self.shadow[k], "device_mesh")
                else v.float().to(self.shadow[k].device)
            )


def _full(t: torch.Tensor) -> torch.Tensor:
    """A full CPU tensor from a (possibly sharded DTensor) tensor."""
    if hasattr(t, "full_tensor"):
        t = t.full_tensor()
    return t.detach().cpu()


def _like(full: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``full`` laid out like ``target`` (sharded the same way if ``target`` is a DTensor)."""
    if hasattr(target, "device_mesh"):
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(full.to(target.device), target.device_mesh, target.placements)
    return full.to(target.device)


class Trainer:
    """Process setup, wrapping, checkpoints, logging and stop signals for one training run (see module doc)."""

    def __init__(self, config: TrainerConfig) -> None:
        self.config = config
        self.out_dir = Path(config.out_dir)
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.distributed = self.world_size > 1
        if torch.cuda.is_available():
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
            if config.cpu_threads:
                torch.set_num_threads(config.cpu_threads)
        self._owns_process_group = self.distributed and not dist.is_initialized()
        if (
            self._owns_process_group
        ):  # a caller that set up the group itself (several runs per launch) keeps it
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.precision = self._resolve_precision(config.precision)
        self.strategy = self._resolve_strategy(config.strategy)
        torch.manual_seed(config.seed + self.rank)
        self.stop_requested = False
        self._install_signal_handlers()
        self._writer = None
        self._metrics_file = None
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._metrics_file = open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
            if config.tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._writer = SummaryWriter(str(self.out_dir / "tensorboard"))
                except ModuleNotFoundError:
                    print(
                        "tensorboard is not installed (pip install tensorboard): logging to metrics.jsonl only"
                    )

    # -- environment -----------------------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _resolve_precision(self, precision: str) -> str:
        if precision == "auto":
            return "bf16" if self.device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
        return precision

    def _resolve_strategy(self, strategy: str) -> str:
        if strategy == "auto":
            return "ddp" if self.distributed else "none"
        if strategy not in ("none", "ddp", "fsdp"):
            raise ValueError(f"strategy must be auto, none, ddp or fsdp, got {strategy!r}")
        if strategy in ("ddp", "fsdp") and not dist.is_initialized():
            raise ValueError(f"strategy {strategy!r} needs torchrun (WORLD_SIZE, RANK, ... are not set)")
        return strategy

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when precision is bf16, a no-op otherwise."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def wrap(
        self, model: nn.Module, fsdp_units: Iterable[nn.Module] = (), find_unused_parameters: bool = False
    ) -> nn.Module:
        """Wrap ``model`` for the strategy: DDP, FSDP2 (each of ``fsdp_units`` sharded first, then the root), or none."""
        if self.strategy == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            return DistributedDataParallel(
                model, device_ids=ids, find_unused_parameters=find_unused_parameters
            )
        if self.strategy == "fsdp":
            from torch.distributed.fsdp import fully_shard

            for unit in fsdp_units:
                fully_shard(unit)
            return fully_shard(model)
        return model

    @staticmethod
    def unwrap(model: nn.Module) -> nn.Module:
        return (
            model.module
            if hasattr(model, "module") and hasattr(model, "require_backward_grad_sync")
            else model
        )

    def _install_signal_handlers(self) -> None:
        def handler(signum, frame):
            if self.stop_requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stop_requested = True
            print(
                f"\n[trainer] signal {signal.Signals(signum).name}: saving a checkpoint and stopping",
                file=sys.stderr,
            )

        self._previous_handlers = {}
        with contextlib.suppress(ValueError):  # not the main thread (e.g. inside some test runners)
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous_handlers[sig] = signal.signal(sig, handler)

    def should_stop(self) -> bool:
        """True on every rank as soon as any rank got a stop signal (one tiny all-reduce when distributed)."""
        if not self.distributed:
            return self.stop_requested
        flag = torch.tensor([1.0 if self.stop_requested else 0.0], device=self.device)
        dist.all_reduce(flag)
        agreed = bool(flag.item() > 0)
        # A signal whose handler ran while the collective was in flight is not in this step's flag: keep it for the
        # next step (never overwrite it with this step's "no"), and return what every rank agreed, so all ranks stop
        # after the same step.
        self.stop_requested = self.stop_requested or agreed
        return agreed

    def mean_across_ranks(self, values: dict[str, float]) -> dict[str, float]:
        """The mean of each value over the ranks (one all-reduce; every rank must call it with the same keys).

        With equal per-rank batches this is what one process with the whole global batch would log.
        """
        if not self.distributed or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t.tolist(), strict=True)}

    # -- checkpoints -----------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    def save_checkpoint(
        self,
        step: int,
        models: dict[str, nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        others: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Write ``checkpoint.pt`` atomically (all ranks must call; rank 0 writes). ``optimizers[k]`` belongs to
        ``models[k]``; ``others`` are objects with ``state_dict``/``load_state_dict``."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        payload = {
            "step": step,
            "time": time.time(),
            "world_size": self.world_size,
            "models": {k: get_model_state_dict(m, options=opts) for k, m in models.items()},
            "optimizers": {
                k: get_optimizer_state_dict(models[k], o, options=opts) for k, o in optimizers.items()
            },
            "others": {k: o.state_dict() for k, o in (others or {}).items()},
            "extra": extra or {},
        }
        if self.is_main:
            tmp = self.checkpoint_path.with_suffix(".tmp")
            torch.save(payload, tmp)
            os.replace(tmp, self.checkpoint_path)
        if self.distributed:
            dist.barrier()
        return self.checkpoint_path

    def load_checkpoint(
        self,
        models: dict[str, nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        others: dict[str, Any] | None = None,
        path: str | Path | None = None,
        skip: tuple[str, ...] = (),
    ) -> int:
        """Restore everything from ``path`` (default: this run's ``checkpoint.pt``); returns the step (0 if none).

        ``skip`` names models (and their optimizers) to leave as they are, e.g. a part rebuilt on purpose.
        """
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        path = Path(path) if path else self.checkpoint_path
        if not path.exists():
            return 0
        try:
            payload = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise RuntimeError(
                f"{path}: cannot read checkpoint ({exc}); move it away to start fresh"
            ) from None
        opts = StateDictOptions(full_state_dict=True)
        for k, m in models.items():
            if k not in skip:
                set_model_state_dict(m, payload["models"][k], options=opts)
        for k, o in optimizers.items():
            if k not in skip:
                set_optimizer_state_dict(models[k], o, payload["optimizers"][k], options=opts)
        for k, o in (others or {}).items():
            if k in payload["others"]:
                o.load_state_dict(payload["others"][k])
        self.resumed_extra = payload.get("extra", {})
        if self.is_main:
            print(f"[trainer] resumed from {path} at step {payload['step']}", file=sys.stderr)
        return int(payload["step"])

    # -- logging ---------------------------------------------------------------------------------------------
    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Scalars to TensorBoard and one JSON line in ``metrics.jsonl`` (rank 0 only)."""
        if not self.is_main:
            return
        metrics = {k: float(v) for k, v in metrics.items()}
        if self._writer is not None:
            for k, v in metrics.items():
                self._writer.add_scalar(k, v, step)
        self._metrics_file.write(json.dumps({"step": step, "time": round(time.time(), 3), **metrics}) + "\n")
        self._metrics_file.flush()

    def progress(
        self, iterable: Iterable, total: int | None = None, initial: int = 0, desc: str = "train"
    ) -> Iterator:
        """A tqdm bar on rank 0 (sparse updates when not writing to a terminal, e.g. under nohup)."""
        from tqdm import tqdm

        if total is None and hasattr(iterable, "__len__"):
            total = initial + len(iterable)
        tty = sys.stderr.isatty()
        return iter(
            tqdm(
                iterable,
                total=total,
                initial=initial,
                desc=desc,
                disable=not self.is_main,
                mininterval=0.5 if tty else 30.0,
                dynamic_ncols=True,
            )
        )

    def close(self) -> None:
        """Flush logs, restore the signal handlers, leave the process group (if this trainer created it)."""
        for sig, previous in self._previous_handlers.items():
            signal.signal(sig, previous)
        if self._writer is not None:
            self._writer.close()
        if self._metrics_file is not None:
            self._metrics_file.close()
        if self._owns_process_group and dist.is_initialized():
            dist.destroy_process_group()
