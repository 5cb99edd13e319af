"""Factorised residual vector quantizer (DAC's recipe), written out so every step is visible and fast to stream.

Each of the ``n_q`` stages projects the residual ``[.., D]`` to ``codebook_dim`` (8) dimensions, picks the code
whose direction is nearest (cosine similarity of L2-normalised vectors: low-dimensional, normalised lookups keep
most codes in use), and projects the chosen code back to ``D``. Training: straight-through gradients, the codebook
loss ``|sg(z_e) - c|^2`` and commitment loss ``|z_e - sg(c)|^2``, quantizer dropout (a share of the items keeps only
the first 1..n_q stages, so the first codebooks carry the most and every prefix decodes), and per-code usage
counts for logging (perplexity, share of codes in use) and for restarting dead codes from recent latents.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FactorizedVQ(nn.Module):
    """One stage: ``[.., D]`` -> (quantised ``[.., D]``, codes ``[..]``, commitment loss, codebook loss)."""

    def __init__(self, dim: int, codebook_size: int, codebook_dim: int) -> None:
        super().__init__()
        self.in_proj = nn.Linear(dim, codebook_dim)
        self.out_proj = nn.Linear(codebook_dim, dim)
        self.codebook = nn.Parameter(torch.randn(codebook_size, codebook_dim))

    def nearest(self, z_e: Tensor) -> Tensor:
        """Index of the code with the largest cosine similarity (a row's norm does not change its argmax)."""
        return (z_e @ F.normalize(self.codebook, dim=-1).t()).argmax(dim=-1)

    def forward(self, residual: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        z_e = self.in_proj(residual)
        codes = self.nearest(z_e.detach())
        z_q = self.codebook[codes]
        commitment = (z_e - z_q.detach()).pow(2).mean(dim=-1)
        codebook = (z_q - z_e.detach()).pow(2).mean(dim=-1)
        z_q = z_e + (z_q - z_e).detach()
        return self.out_proj(z_q), codes, commitment, codebook, z_e


class FactorizedRVQ(nn.Module):
    """``n_q`` :class:`FactorizedVQ` stages on the residual; latents are time-major ``[B, T, D]``."""

    def __init__(
        self,
        dim: int,
        n_q: int,
        codebook_size: int,
        codebook_dim: int,
        quantizer_dropout: float,
        commitment_weight: float,
        codebook_weight: float,
    ) -> None:
        super().__init__()
        self.n_q, self.codebook_size = n_q, codebook_size
        self.quantizer_dropout = quantizer_dropout
        self.commitment_weight, self.codebook_weight = commitment_weight, codebook_weight
        self.layers = nn.ModuleList(FactorizedVQ(dim, codebook_size, codebook_dim) for _ in range(n_q))
        # How often each code was chosen since the last restart: the trainer adds each step's ``last_counts``
        # (summed over ranks, so every rank holds the same numbers) with :meth:`add_usage_`.
        self.register_buffer("usage", torch.zeros(n_q, codebook_size))
        self.last_counts: Tensor | None = None  # [n_q, codebook_size] of the last training forward, this rank
        self._recent: list[Tensor] = []  # z_e of the last training forward per stage: restart candidates
        self._tables: dict[str, Tensor] | None = None  # see freeze_tables_()

    def active_stages(self, batch: int, device: torch.device) -> Tensor:
        """Stages kept per item ``[B]``: n_q, or for a ``quantizer_dropout`` share of items a random 1..n_q."""
        n = torch.full((batch,), self.n_q, device=device)
        if self.training and self.quantizer_dropout > 0:
            dropped = torch.rand(batch, device=device) < self.quantizer_dropout
            n = torch.where(dropped, torch.randint(1, self.n_q + 1, (batch,), device=device), n)
        return n

    def forward(self, z: Tensor, n_q: int | Tensor | None = None) -> dict[str, Tensor]:
        """Latents ``[B, T, D]`` -> ``{"q" [B, T, D], "codes" [B, n_q, T] (-1 where dropped), "loss", ...}``.

        ``n_q``: stages to keep, for all items (int) or per item (``[B]``, as the training data stream draws them);
        None draws quantizer dropout here. ``loss`` is ``commitment_weight * commitment + codebook_weight *
        codebook`` (means over kept stages).
        """
        b = z.shape[0]
        if n_q is None:
            active = self.active_stages(b, z.device)
        elif isinstance(n_q, Tensor):
            active = n_q.to(z.device)
        else:
            active = torch.full((b,), n_q, device=z.device)
        residual, q = z, torch.zeros_like(z)
        codes, commitment, codebook = [], z.new_zeros(()), z.new_zeros(())
        self._recent = []
        counts = []
        for i, layer in enumerate(self.layers):
            out, idx, commit_i, book_i, z_e = layer(residual)
            keep = (active > i).to(z.dtype)  # [B]
            q = q + out * keep[:, None, None]
            residual = residual - out
            commitment = commitment + (commit_i.mean(dim=-1) * keep).sum() / b
            codebook = codebook + (book_i.mean(dim=-1) * keep).sum() / b
            codes.append(torch.where(keep[:, None] > 0, idx, torch.full_like(idx, -1)))
            if self.training:
                kept = idx[keep > 0].flatten()
                counts.append(torch.bincount(kept, minlength=self.codebook_size).to(self.usage.dtype))
                self._recent.append(z_e.detach().flatten(0, -2))  # every item: the same size on every rank
        if self.training:
            self.last_counts = torch.stack(counts)
        loss = self.commitment_weight * commitment + self.codebook_weight * codebook
        return {"q": q, "codes": torch.stack(codes, dim=1), "loss": loss, "commitment": commitment}

    # -- inference: the same choices, fewer operations (no losses, no dropout) -------------------------------------
    @torch.no_grad()
    def freeze_tables_(self) -> None:
        """Precompute, for inference with frozen weights, the normalised codebooks and each code's projected latent.

        Then encoding a frame is 4 small operations per stage and decoding one gather; later weight changes are
        not seen, so only call this on an inference copy.
        """
        tables = {"offsets": torch.arange(self.n_q, device=self.usage.device)[:, None] * self.codebook_size}
        for i, layer in enumerate(self.layers):
            tables[f"in_w.{i}"] = layer.in_proj.weight
            tables[f"in_b.{i}"] = layer.in_proj.bias
            tables[f"book_t.{i}"] = F.normalize(layer.codebook, dim=-1).t().contiguous()
            tables[f"out.{i}"] = layer.out_proj(layer.codebook)  # [K, D]: each code's latent
        tables["out"] = torch.cat([tables[f"out.{i}"] for i in range(self.n_q)])  # [n_q * K, D]
        self._tables = tables

    @torch.no_grad()
    def encode(self, z: Tensor) -> Tensor:
        """Latents ``[B, T, D]`` -> codes ``[B, n_q, T]`` with every stage."""
        residual, codes, t = z, [], self._tables
        for i, layer in enumerate(self.layers):
            if t is None:
                idx = layer.nearest(layer.in_proj(residual))
                residual = residual - layer.out_proj(layer.codebook[idx])
            else:
                idx = (F.linear(residual, t[f"in_w.{i}"], t[f"in_b.{i}"]) @ t[f"book_t.{i}"]).argmax(dim=-1)
                residual = residual - t[f"out.{i}"][idx]
            codes.append(idx)
        return torch.stack(codes, dim=1)

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, k, T]`` (the first k <= n_q stages) -> latents ``[B, T, D]``."""
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.n_q:
            raise ValueError(f"codes must be [B, 1..{self.n_q}, T], got shape {tuple(codes.shape)}")
        if codes.numel():
            low, high = (int(v) for v in torch.aminmax(codes))
            if low < 0 or high >= self.codebook_size:
                raise ValueError(f"codes must lie in [0, {self.codebook_size}), got [{low}, {high}]")
        if self._tables is not None:
            k = codes.shape[1]
            return self._tables["out"][codes + self._tables["offsets"][:k]].sum(dim=1)
        q = None
        for i in range(codes.shape[1]):
            layer = self.layers[i]
            out = layer.out_proj(layer.codebook[codes[:, i]])
            q = out if q is None else q + out
        return q

    # -- codebook health ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def add_usage_(self, counts: Tensor) -> None:
        """Add code counts ``[n_q, codebook_size]`` (summed over ranks) to :attr:`usage`."""
        self.usage += counts.to(self.usage.device, self.usage.dtype)

    def usage_stats(self, usage: Tensor | None = None) -> dict[str, float]:
        """Per stage: perplexity of the code histogram (max ``codebook_size``) and the share of codes used."""
        usage = self.usage if usage is None else usage
        stats = {}
        for i, counts in enumerate(usage):
            total = counts.sum()
            if total <= 0:
                continue
            p = counts / total
            entropy = -(p[p > 0] * p[p > 0].log()).sum()
            stats[f"codebook/perplexity_{i + 1}"] = float(entropy.exp())
            stats[f"codebook/used_{i + 1}"] = float((counts > 0).float().mean())
        if stats:
            n = len(stats) // 2
            stats["codebook/perplexity_mean"] = (
                sum(stats[f"codebook/perplexity_{i + 1}"] for i in range(n)) / n
            )
            stats["codebook/used_mean"] = sum(stats[f"codebook/used_{i + 1}"] for i in range(n)) / n
        return stats

    @torch.no_grad()
    def restart_dead_codes_(
        self, usage: Tensor, candidates: list[Tensor], min_count: float, generator: torch.Generator
    ) -> dict[int, tuple[Tensor, Tensor]]:
        """Give every code used fewer than ``min_count`` times a recent encoder latent (``candidates[i]`` [N, d]).

        Returns ``{stage: (rows, new values)}`` of what was restarted. ``usage`` and ``candidates`` must be the same
        on every rank (sum and gather them first) and ``generator`` seeded alike, so every rank makes the same choice.
        """
        restarted = {}
        for i, layer in enumerate(self.layers):
            dead = (usage[i] < min_count).nonzero().flatten()
            pool = candidates[i] if i < len(candidates) else None
            if dead.numel() == 0 or pool is None or pool.shape[0] == 0:
                continue
            picks = torch.randint(0, pool.shape[0], (dead.numel(),), generator=generator)
            new = pool[picks].to(layer.codebook.dtype)
            new = new + 1e-3 * new.norm(dim=-1, keepdim=True) * torch.randn(new.shape, generator=generator)
            assign_rows_(layer.codebook, dead, new)
            restarted[i] = (dead, new)
        return restarted

    def recent_latents(self) -> list[Tensor]:
        """The z_e of the last training forward per stage, ``[items * frames, codebook_dim]`` each."""
        return list(self._recent)

    def expected_perplexity(self) -> float:
        """Perplexity of a uniform code distribution (the maximum), for reference."""
        return float(self.codebook_size)

    @property
    def bits_per_frame(self) -> float:
        return self.n_q * math.log2(self.codebook_size)


@torch.no_grad()
def assign_rows_(param: Tensor, rows: Tensor, values: Tensor) -> None:
    """``param[rows] = values`` for a plain or an FSDP-sharded (DTensor) tensor (a collective for a DTensor)."""
    if hasattr(param, "device_mesh"):
        from torch.distributed.tensor import distribute_tensor

        full = param.full_tensor()
        full[rows.to(full.device)] = values.to(full.device, full.dtype)
        param.copy_(distribute_tensor(full, param.device_mesh, param.placements))
    else:
        param[rows.to(param.device)] = values.to(param.device, param.dtype)
