"""Gradient balancer (EnCodec, audiocraft's ``Balancer``): loss weights set each loss's *share of the gradient*.

For losses ``L_i`` that depend on the model output ``y`` (the decoded waveform), the gradient of each ``L_i`` with
respect to ``y`` is computed separately; its norm (per batch item, averaged over the batch) is tracked with an exponential moving average; the gradient that
flows back into the model is ``total_norm * sum_i (w_i / sum_j w_j) * g_i / ema_norm_i``. So a weight of 2 means
"twice the gradient of a weight-1 loss", whatever the losses' scales, which makes weights transferable across
datasets and losses. Under DDP the norms are averaged across ranks and divided by the world size (each rank's mean loss
is over its share of the global batch, so its gradients are ``world_size`` times those of one process with the
whole batch): every rank scales identically, the norms and EMAs are the same as one process would compute, and after
DDP averages the parameter gradients they equal one process's, so checkpoints move between world sizes.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


class Balancer:
    def __init__(
        self, weights: dict[str, float], total_norm: float = 1.0, ema_decay: float = 0.999, eps: float = 1e-12
    ):
        if not weights or any(w < 0 for w in weights.values()):
            raise ValueError(f"weights must be a non-empty dict of non-negative floats, got {weights}")
        self.weights = dict(weights)
        self.total_norm = total_norm
        self.ema_decay = ema_decay
        self.eps = eps
        self._ema: dict[str, float] = {}
        self._ema_count: dict[str, float] = {}

    def state_dict(self) -> dict:
        return {"ema": dict(self._ema), "ema_count": dict(self._ema_count)}

    def load_state_dict(self, state: dict) -> None:
        self._ema = dict(state.get("ema", {}))
        self._ema_count = dict(state.get("ema_count", {}))

    def _update_ema(self, name: str, value: float) -> float:
        """Bias-corrected EMA (as audiocraft's ``averager``)."""
        self._ema[name] = self.ema_decay * self._ema.get(name, 0.0) + value
        self._ema_count[name] = self.ema_decay * self._ema_count.get(name, 0.0) + 1.0
        return self._ema[name] / self._ema_count[name]

    def gradient(self, losses: dict[str, Tensor], output: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The balanced gradient with respect to ``output`` and the per-loss gradient norms (for logging).

        Call ``torch.autograd.backward([output, other_loss], [grad, ones])`` with it (one backward pass, so DDP's
        gradient hooks fire once).
        """
        active = {k: v for k, v in losses.items() if self.weights.get(k, 0.0) > 0}
        if not active:
            raise ValueError(f"none of the losses {sorted(losses)} has a positive weight in {self.weights}")
        grads, norms = {}, {}
        for name, loss in active.items():
            (g,) = torch.autograd.grad(loss, [output], retain_graph=True)
            grads[name] = g
            norms[name] = g.float().flatten(1).norm(p=2, dim=1).mean().detach()  # per item, as audiocraft
        if dist.is_available() and dist.is_initialized():
            stacked = torch.stack([norms[k] for k in active])
            dist.all_reduce(stacked)
            stacked /= dist.get_world_size() ** 2  # the mean over ranks, then per global-batch mean loss
            norms = {k: stacked[i] for i, k in enumerate(active)}
        total_w = sum(self.weights[k] for k in active)
        out = torch.zeros_like(output)
        logged = {}
        for name, g in grads.items():
            avg = self._update_ema(name, float(norms[name]))
            logged[name] = float(norms[name])
            out = out + g * (self.total_norm * self.weights[name] / total_w / (avg + self.eps))
        return out, logged
