"""The streaming speech-to-speech model: a Moshi-style RQ-Transformer over codec frames.

Two token streams run side by side at the codec's frame rate (50 Hz, 20 ms frames), each frame carrying ``n_q``
codebook tokens: the *user* stream (what the microphone hears, encoded by the codec) and the *system* stream (what
the model says). While the user speaks the system stream carries the ``silence`` token; the model itself decides
when its answer starts.

- The **temporal transformer** (causal, RoPE, attention bounded by ``context`` frames) sees at step ``t`` the sum of
  the embeddings of the user's tokens of frame ``t`` and the system's tokens of step ``t - 1``.
- The **depth transformer** turns the temporal output of step ``t`` into the system's ``n_q`` tokens for that step,
  codebook 1 first, each conditioned on the ones before it.
- **Acoustic delay** (1 frame): at step ``t`` codebook 1 belongs to frame ``t`` and codebooks 2..n_q to frame
  ``t - 1``, so the semantic token leads and the acoustic detail follows (see :func:`delay_codes`).

Token ids per codebook: ``0..card-1`` are codec tokens, ``card`` is silence, ``card + 1`` is the start token that
stands for "the system's previous step" at step 0.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .kv_cache import RingKVCache


@dataclass
class S2SConfig:
    """Sizes of an S2S model. ``context`` and ``frame_rate`` are in frames and frames per second."""

    n_q: int = 8
    card: int = 1024
    dim: int = 256
    num_heads: int = 4
    num_layers: int = 4
    ffn_dim: int = 1024
    depth_dim: int = 256
    depth_heads: int = 4
    depth_layers: int = 2
    depth_ffn_dim: int = 512
    context: int = 500
    rope_theta: float = 10000.0
    dropout: float = 0.0
    gradient_checkpointing: bool = False
    frame_rate: float = 50.0

    @property
    def silence_id(self) -> int:
        return self.card

    @property
    def start_id(self) -> int:
        return self.card + 1

    @property
    def vocab_size(self) -> int:
        return self.card + 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> S2SConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown S2SConfig field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**data)


PRESETS: dict[str, dict] = {
    # For tests: builds and runs in milliseconds.
    "tiny": dict(
        dim=32,
        num_heads=2,
        num_layers=2,
        ffn_dim=64,
        depth_dim=32,
        depth_heads=2,
        depth_layers=1,
        depth_ffn_dim=64,
        context=64,
    ),
    # Trains on one CPU core in hours and streams far faster than real time on a laptop CPU.
    "small": dict(
        dim=192,
        num_heads=4,
        num_layers=4,
        ffn_dim=768,
        depth_dim=128,
        depth_heads=4,
        depth_layers=2,
        depth_ffn_dim=384,
        context=500,
        dropout=0.1,
    ),
    # The seed's GPU budget: 24 layers of width 768 (12 heads, FFN 3072) split 20 temporal + 4 depth.
    "base": dict(
        dim=768,
        num_heads=12,
        num_layers=20,
        ffn_dim=3072,
        depth_dim=768,
        depth_heads=12,
        depth_layers=4,
        depth_ffn_dim=3072,
        context=3000,
        gradient_checkpointing=True,
    ),
}


def config_preset(name: str, **overrides) -> S2SConfig:
    """The named preset (``tiny``, ``small``, ``base``) with ``overrides`` applied (e.g. ``card=`` of the codec)."""
    if name not in PRESETS:
        raise ValueError(f"Unknown S2S preset {name!r}; known presets: {', '.join(PRESETS)}")
    return S2SConfig(**{**PRESETS[name], **overrides})


def delay_codes(codes: torch.Tensor, pad_id: int, delay: int = 1) -> torch.Tensor:
    """Frame-aligned codes ``[B, n_q, T]`` -> step-aligned: codebooks 2.. shifted right by ``delay`` steps."""
    out = codes.clone()
    out[:, 1:, delay:] = codes[:, 1:, :-delay]
    out[:, 1:, :delay] = pad_id
    return out


def undelay_codes(steps: torch.Tensor, delay: int = 1) -> torch.Tensor:
    """Step-aligned ``[B, n_q, S]`` -> frame-aligned ``[B, n_q, S - delay]`` (the last frames are not complete yet)."""
    frames = steps.shape[-1] - delay
    return torch.cat([steps[:, :1, :frames], steps[:, 1:, delay : delay + frames]], dim=1)


def rope_tables(
    positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE's ``(cos, sin)``, each ``[T, head_dim / 2]``, for absolute ``positions`` (``[T]``); shared by all layers."""
    half = head_dim // 2
    freqs = theta ** (-torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions.to(torch.float32)[:, None] * freqs[None, :]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate ``x`` (``[B, H, T, D]``) by the tables of :func:`rope_tables`; rotate-half convention."""
    cos, sin = rope
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def window_mask(length: int, context: int, device: torch.device) -> torch.Tensor | None:
    """Causal mask limited to the last ``context`` positions (True = may attend); None when plain causal suffices."""
    if length <= context:
        return None
    i = torch.arange(length, device=device)[:, None]
    j = torch.arange(length, device=device)[None, :]
    return (j <= i) & (j > i - context)


def masked_cross_entropy(
    logits: torch.Tensor, system_steps: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy of ``logits`` ``[B, T, n_q, V]`` against ``system_steps`` ``[B, n_q, T]``, mean over kept steps."""
    ce = F.cross_entropy(
        logits.flatten(0, 2).float(), system_steps.transpose(1, 2).flatten(), reduction="none"
    )
    ce = ce.view(logits.shape[:3])
    if mask is None:
        return ce.mean()
    weights = mask[:, :, None].to(ce.dtype).expand_as(ce)
    return (ce * weights).sum() / weights.sum().clamp(min=1.0)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Expected dim {dim} to be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        cache: RingKVCache | None,
    ) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q = apply_rope(q, rope)
        k = apply_rope(k, rope)
        if cache is not None:
            k, v, mask = cache.update(k, v)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        elif mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, t, c))


class FeedForward(nn.Module):
    """SwiGLU: ``w2(silu(w1 x) * w3 x)``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn_dim: int, rope_theta: float, dropout: float) -> None:
        super().__init__()
        self.attn_norm = nn.RMSNorm(dim, eps=1e-5)
        self.attn = Attention(dim, num_heads)
        self.ffn_norm = nn.RMSNorm(dim, eps=1e-5)
        self.ffn = FeedForward(dim, ffn_dim)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        cache: RingKVCache | None = None,
    ) -> torch.Tensor:
        x = x + self.drop(self.attn(self.attn_norm(x), rope, mask, cache))
        return x + self.drop(self.ffn(self.ffn_norm(x)))


class Transformer(nn.Module):
    """Pre-norm causal transformer; ``caches`` (one :class:`RingKVCache` per layer) turn it into a streaming one."""

    def __init__(
        self, num_layers: int, dim: int, num_heads: int, ffn_dim: int, rope_theta: float, dropout: float
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.rope_theta = rope_theta
        self.layers = nn.ModuleList(
            Block(dim, num_heads, ffn_dim, rope_theta, dropout) for _ in range(num_layers)
        )
        self.norm = nn.RMSNorm(dim, eps=1e-5)
        self.gradient_checkpointing = False

    def new_caches(self, batch_size: int, context: int, device, dtype) -> list[RingKVCache]:
        dim = self.norm.weight.shape[0]
        return [
            RingKVCache(batch_size, self.num_heads, context, dim // self.num_heads, device, dtype)
            for _ in self.layers
        ]

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor | None = None,
        caches: list[RingKVCache] | None = None,
    ) -> torch.Tensor:
        rope = rope_tables(positions, x.shape[-1] // self.num_heads, self.rope_theta, x.dtype)
        for i, layer in enumerate(self.layers):
            if caches is not None:
                x = layer(x, rope, None, caches[i])
            elif self.gradient_checkpointing and self.training:
                x = checkpoint(layer, x, rope, mask, use_reentrant=False)
            else:
                x = layer(x, rope, mask)
        return self.norm(x)


class S2SModel(nn.Module):
    """RQ-Transformer over (user, system) codec-token streams; see the module docstring for the layout."""

    def __init__(self, config: S2SConfig) -> None:
        super().__init__()
        self.config = c = config
        self.user_emb = nn.ModuleList(nn.Embedding(c.card, c.dim) for _ in range(c.n_q))
        self.system_emb = nn.ModuleList(nn.Embedding(c.vocab_size, c.dim) for _ in range(c.n_q))
        self.temporal = Transformer(c.num_layers, c.dim, c.num_heads, c.ffn_dim, c.rope_theta, c.dropout)
        self.temporal.gradient_checkpointing = c.gradient_checkpointing
        self.depth_in = nn.ModuleList(nn.Linear(c.dim, c.depth_dim, bias=False) for _ in range(c.n_q))
        self.depth_emb = nn.ModuleList(nn.Embedding(c.vocab_size, c.depth_dim) for _ in range(c.n_q - 1))
        self.depth = Transformer(
            c.depth_layers, c.depth_dim, c.depth_heads, c.depth_ffn_dim, c.rope_theta, c.dropout
        )
        self.heads = nn.ModuleList(nn.Linear(c.depth_dim, c.vocab_size, bias=False) for _ in range(c.n_q))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- the pieces shared by training, offline and streaming generation -------------------------------------
    def temporal_input(self, user: torch.Tensor, system_prev: torch.Tensor) -> torch.Tensor:
        """Sum of embeddings: ``user``/``system_prev`` ``[B, n_q, T]`` -> ``[B, T, dim]``."""
        x = self.user_emb[0](user[:, 0])
        for k in range(1, self.config.n_q):
            x = x + self.user_emb[k](user[:, k])
        for k in range(self.config.n_q):
            x = x + self.system_emb[k](system_prev[:, k])
        return x

    def depth_input(self, context: torch.Tensor, k: int, prev_token: torch.Tensor | None) -> torch.Tensor:
        """Input of depth position ``k``: the projected temporal output plus the embedding of token ``k - 1``."""
        x = self.depth_in[k](context)
        if k > 0:
            x = x + self.depth_emb[k - 1](prev_token)
        return x

    def logits_for(self, k: int, depth_out: torch.Tensor) -> torch.Tensor:
        """Logits of codebook ``k``; the start token is never a valid output."""
        logits = self.heads[k](depth_out).float()
        logits[..., self.config.start_id] = float("-inf")
        return logits

    # -- full-sequence (training, offline) ---------------------------------------------------------------------
    def shift_system(self, system_steps: torch.Tensor) -> torch.Tensor:
        """The system tokens seen at each step: those of the previous step, the start token at step 0."""
        prev = torch.full_like(system_steps, self.config.start_id)
        prev[:, :, 1:] = system_steps[:, :, :-1]
        return prev

    def temporal_forward(
        self, user: torch.Tensor, system_steps: torch.Tensor, offset: int = 0
    ) -> torch.Tensor:
        """Temporal outputs ``[B, T, dim]`` for every step at once (teacher forcing)."""
        x = self.temporal_input(user, self.shift_system(system_steps))
        t = x.shape[1]
        positions = torch.arange(offset, offset + t, device=x.device)
        return self.temporal(x, positions, window_mask(t, self.config.context, x.device))

    def forward(self, user: torch.Tensor, system_steps: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T, n_q, vocab]`` for step-aligned (delayed) system tokens ``system_steps`` ``[B, n_q, T]``."""
        c = self.config
        h = self.temporal_forward(user, system_steps)
        b, t, _ = h.shape
        inputs = [self.depth_input(h, k, system_steps[:, k - 1] if k > 0 else None) for k in range(c.n_q)]
        x = torch.stack(inputs, dim=2).reshape(b * t, c.n_q, c.depth_dim)
        out = self.depth(x, torch.arange(c.n_q, device=x.device)).view(b, t, c.n_q, c.depth_dim)
        return torch.stack([self.logits_for(k, out[:, :, k]) for k in range(c.n_q)], dim=2)

    def loss(
        self, user: torch.Tensor, system_steps: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean cross-entropy over steps and codebooks; ``mask`` ``[B, T]`` (True = counts) hides padding."""
        return masked_cross_entropy(self.forward(user, system_steps), system_steps, mask)

    # -- checkpoints -------------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` and ``model.pt`` (a state dict, cast to ``dtype`` if given) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
            for k, v in self.state_dict().items()
        }
        torch.save(state, directory / "model.pt")
        (directory / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> S2SModel:
        """Load a model saved by :meth:`save_pretrained`; raises FileNotFoundError naming the missing file."""
        directory = Path(directory)
        for name in ("config.json", "model.pt"):
            if not (directory / name).is_file():
                raise FileNotFoundError(
                    f"S2S checkpoint file {directory / name} is missing (expected config.json and model.pt)"
                )
        config = S2SConfig.from_dict(json.loads((directory / "config.json").read_text()))
        model = cls(config)
        state = torch.load(directory / "model.pt", map_location=map_location, weights_only=True)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        return model.eval()
