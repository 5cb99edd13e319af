"""Residual vector quantizer: a thin wrapper over ``vector_quantize_pytorch.ResidualVQ``.

Every keyword is passed explicitly from :class:`CodecConfig` so a reader sees the whole recipe (EnCodec's: EMA
codebooks with decay 0.99, k-means initialisation on the first training batch, dead-code replacement, commitment
loss, quantizer dropout for variable bitrate). The quantizer works frame by frame, so it is stateless when streaming.
Quantisation always runs in float32, also under bf16 autocast.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from .config import CodecConfig


def _import_rvq():
    try:
        from vector_quantize_pytorch import ResidualVQ
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "The codec needs vector-quantize-pytorch: pip install 's2s-bench[train]' "
            "(or: pip install vector-quantize-pytorch torch==<your torch version>)"
        ) from exc
    try:  # the library logs a warning per codebook when k-means sees fewer vectors than codes; keep logs readable
        from loguru import logger

        logger.disable("vector_quantize_pytorch")
    except ModuleNotFoundError:
        pass
    return ResidualVQ


class ResidualVectorQuantizer(nn.Module):
    """``[B, D, F]`` latents <-> ``[B, n_q, F]`` codes."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        ResidualVQ = _import_rvq()
        self.n_q = cfg.n_q
        self.codebook_size = cfg.codebook_size
        self.rvq = ResidualVQ(
            dim=cfg.dimension,
            num_quantizers=cfg.n_q,
            codebook_size=cfg.codebook_size,
            codebook_dim=cfg.codebook_dim if cfg.codebook_dim is not None else cfg.dimension,
            shared_codebook=False,
            quantize_dropout=cfg.quantize_dropout,
            quantize_dropout_cutoff_index=cfg.quantize_dropout_cutoff_index,
            quantize_dropout_multiple_of=1,
            # Passed on to each VectorQuantize layer:
            decay=cfg.ema_decay,
            kmeans_init=cfg.kmeans_init,
            kmeans_iters=cfg.kmeans_iters,
            threshold_ema_dead_code=cfg.threshold_ema_dead_code,
            commitment_weight=cfg.commitment_weight,
            use_cosine_sim=False,
            learnable_codebook=False,
            ema_update=True,
            rotation_trick=False,
            straight_through=False,
            stochastic_sample_codes=False,
            orthogonal_reg_weight=0.0,
            channel_last=True,
        )

    def _codebooks(self):
        return [layer._codebook for layer in self.rvq.layers]

    @property
    def initialized(self) -> bool:
        """False until k-means has run on a first training batch (or :meth:`init_random_` was called)."""
        return all(bool(cb.initted) for cb in self._codebooks())

    @torch.no_grad()
    def init_random_(self, seed: int = 0) -> None:
        """Give untrained codebooks deterministic random entries (for random test models, never for training)."""
        gen = torch.Generator().manual_seed(seed)
        for cb in self._codebooks():
            if not bool(cb.initted):
                scale = 1.0 / cb.embed.shape[-1] ** 0.5
                cb.embed.copy_(torch.randn(cb.embed.shape, generator=gen) * scale)
                cb.embed_avg.copy_(cb.embed)
                cb.cluster_size.fill_(1.0)
                cb.initted.fill_(True)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Latents ``[B, D, F]`` -> (quantised ``[B, D, F]``, codes ``[B, n_q, F]``, commitment loss scalar).

        In training mode codebooks get their EMA/k-means/dead-code updates and quantizer dropout applies
        (dropped codebooks come back as code -1). In eval mode the codebooks are untouched.
        """
        if not self.training and not self.initialized:
            warnings.warn(
                "The quantizer's codebooks were never trained (k-means runs on the first training batch); "
                "using deterministic random codebooks. Load trained weights for real use.",
                stacklevel=3,
            )
            self.init_random_()
        with torch.autocast(z.device.type, enabled=False):
            q, codes, losses = self.rvq(z.float().transpose(1, 2))
        return q.transpose(1, 2), codes.transpose(1, 2), losses.sum()

    def encode(self, z: Tensor) -> Tensor:
        """Latents ``[B, D, F]`` -> codes ``[B, n_q, F]`` (int64) with all codebooks."""
        was_training = self.training
        self.eval()
        try:
            _, codes, _ = self(z)
        finally:
            self.train(was_training)
        return codes

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, k, F]`` (k <= n_q, the first k codebooks) -> quantised latents ``[B, D, F]``."""
        if codes.dim() != 3 or codes.shape[1] > self.n_q:
            raise ValueError(f"codes must be [B, <= {self.n_q}, F], got shape {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(
                f"codes must lie in [0, {self.codebook_size}), got [{int(codes.min())}, {int(codes.max())}]"
            )
        with torch.autocast(codes.device.type, enabled=False):
            q = self.rvq.get_output_from_indices(codes.transpose(1, 2))
        return q.transpose(1, 2)
