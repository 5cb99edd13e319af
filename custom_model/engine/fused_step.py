"""One 20 ms tick for a batch of slots as two static-shape graphs: ``encode + S2S step`` and ``decode``.

Why: the per-session path (``StreamingGenerator`` + ``CodecStream``) runs hundreds of tiny PyTorch ops per frame
with Python between them (ring-cache bookkeeping, a mask per layer, eight depth steps each re-entering the
transformer, per-op allocations). Here the same arithmetic is written once as a pure function of tensors with
shapes that depend only on the batch size ``B``, so that it can be traced (TorchScript), compiled
(``torch.compile``) or exported (ONNX Runtime), and so that every live session runs in the same ops:

- the user's and the system's ``n_q`` token embeddings are two gathers from concatenated tables;
- the temporal attention reads the ring KV cache as it is (no write inside the graph) and adds the new key as one
  extra score, so the graph returns the new keys/values (``[layers, B, heads, head_dim]``) and the host writes
  them into the ring with one indexed copy per tick; the mask comes from each slot's position alone;
- the depth loop over the ``n_q`` codebooks is unrolled; its attention context is the handful of keys of this
  frame, held in the graph;
- tokens are drawn in the graph: greedy is ``argmax``; sampling maps per-slot uniforms (drawn on the host from
  each session's own generator) through the inverse CDF, exactly as :func:`custom_model.s2s.generate.sample_token`.

Every row is independent of the others, so a session's tokens do not depend on who else is in the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from custom_model.s2s.generate import inverse_cdf_sample
from custom_model.s2s.model import S2SModel

GRAPH_VERSION = "2"
"""Changes whenever the graphs' inputs, outputs or arithmetic change: part of the key of cached ONNX exports and
``optimize=auto`` decisions (their weights' digest alone would let a new engine load an old export)."""

FORCE_NONE, FORCE_SILENCE_ID, FORCE_SPEECH_ID = 0, 1, 2
"""Per-slot constraint on codebook 1, as an int tensor: none, silence only, anything but silence."""


def _rope(x: Tensor, cos: Tensor, sin: Tensor, rotate: Tensor) -> Tensor:
    """RoPE, rotate-half convention, as ``x * cos + (x @ rotate) * sin`` with ``cos``/``sin`` over the full head
    dimension and ``rotate`` the constant matrix taking ``[x1, x2]`` to ``[-x2, x1]``: the same numbers as
    :func:`custom_model.s2s.model.apply_rope` (a product with a signed permutation is exact) in 4 graph nodes
    instead of 9."""
    return x * cos + torch.matmul(x, rotate) * sin


def _rotate_half_matrix(head_dim: int, device, dtype) -> Tensor:
    half = head_dim // 2
    rotate = torch.zeros(head_dim, head_dim)
    rotate[torch.arange(half) + half, torch.arange(half)] = -1.0  # out[:half] = -x2
    rotate[torch.arange(half), torch.arange(half) + half] = 1.0  # out[half:] = x1
    return rotate.to(device, dtype)


class FusedS2SStep(nn.Module):
    """The S2S model's streaming step for ``B`` slots: ``(user codes, previous tokens, positions, ...) -> tokens``.

    Uses the model's own ``nn.Linear`` and ``nn.RMSNorm`` modules (so dynamic quantisation of linears reaches it);
    the embedding tables and the eight depth input projections are concatenated copies made once.
    """

    def __init__(self, model: S2SModel, temperature: float = 0.0, top_k: int = 0) -> None:
        super().__init__()
        c = self.config = model.config
        self.temperature = float(temperature)
        self.top_k = int(top_k)
        self.temporal = model.temporal
        self.depth = model.depth
        self.heads = model.heads
        weight = next(model.parameters())
        self.register_buffer("user_table", torch.cat([e.weight for e in model.user_emb]).detach().clone())
        self.register_buffer("system_table", torch.cat([e.weight for e in model.system_emb]).detach().clone())
        self.register_buffer("depth_table", torch.cat([e.weight for e in model.depth_emb]).detach().clone())
        self.register_buffer("user_offsets", torch.arange(c.n_q, device=weight.device) * c.card)
        self.register_buffer("system_offsets", torch.arange(c.n_q, device=weight.device) * c.vocab_size)
        self.depth_in = nn.Linear(c.dim, c.n_q * c.depth_dim, bias=False).to(weight.device, weight.dtype)
        with torch.no_grad():
            self.depth_in.weight.copy_(torch.cat([p.weight for p in model.depth_in]))
        head_dim = c.depth_dim // c.depth_heads
        half = head_dim // 2
        freqs = c.rope_theta ** (-torch.arange(half, dtype=torch.float32) / half)
        angles = torch.arange(c.n_q, dtype=torch.float32)[:, None] * freqs[None, :]
        angles = torch.cat([angles, angles], dim=-1)  # [n_q, head_dim]: the same angle for x1 and x2
        self.register_buffer("depth_cos", angles.cos().to(weight.device, weight.dtype))
        self.register_buffer("depth_sin", angles.sin().to(weight.device, weight.dtype))
        self.register_buffer("depth_rotate", _rotate_half_matrix(head_dim, weight.device, weight.dtype))
        t_head = c.dim // c.num_heads
        t_half = t_head // 2
        t_freqs = c.rope_theta ** (-torch.arange(t_half, dtype=torch.float32) / t_half)
        self.register_buffer("temporal_freqs", torch.cat([t_freqs, t_freqs]).to(weight.device))
        self.register_buffer("temporal_rotate", _rotate_half_matrix(t_head, weight.device, weight.dtype))
        self.register_buffer("ring_slots", torch.arange(c.context, device=weight.device))
        never = torch.zeros(c.vocab_size, device=weight.device)
        never[c.start_id] = float("-inf")  # the start token is never a valid output
        self.register_buffer("never_start", never)
        silence = torch.zeros(c.vocab_size, dtype=torch.bool, device=weight.device)
        silence[c.silence_id] = True
        self.register_buffer("is_silence", silence)

    # -- pieces ------------------------------------------------------------------------------------------------
    def _temporal(self, x: Tensor, positions: Tensor, keys: list[Tensor], values: list[Tensor]):
        """``x`` ``[B, dim]``; caches ``[B, H, context, D]`` per layer -> (output ``[B, dim]``, new k, new v)."""
        c = self.config
        heads = c.num_heads
        head_dim = c.dim // heads
        angles = positions.to(torch.float32)[:, None] * self.temporal_freqs[None, :]
        cos = angles.cos().to(x.dtype)[:, None, None, None, :]  # [B, 1, 1, 1, D]: q and k together
        sin = angles.sin().to(x.dtype)[:, None, None, None, :]
        ring = self.ring_slots[None, :]
        p = positions[:, None]
        valid = (ring < p) & (ring != p % c.context)  # held positions in (p - context, p - 1]
        bias = torch.zeros_like(valid, dtype=x.dtype).masked_fill(~valid, float("-inf"))[:, None, None, :]
        scale = 1.0 / math.sqrt(head_dim)
        new_k, new_v = [], []
        h = x[:, None, :]  # [B, 1, dim]
        for i, layer in enumerate(self.temporal.layers):
            qkv = layer.attn.qkv(layer.attn_norm(h)).view(-1, 3, heads, 1, head_dim)
            qk = _rope(qkv[:, :2], cos, sin, self.temporal_rotate)
            q, k, v = qk[:, 0], qk[:, 1], qkv[:, 2]
            # (q K^T + bias) * scale, not q K^T * scale + bias: the same numbers (bias is 0 or -inf), but ONNX
            # Runtime would fold a scale right after the product into it (FusedMatMul alpha), a kernel 3-5x slower
            # than the plain transposed product over the ring
            scores_cache = (torch.matmul(q, keys[i].transpose(-1, -2)) + bias) * scale  # [B, H, 1, context]
            score_new = (q * k).sum(-1, keepdim=True) * scale  # [B, H, 1, 1]
            top = torch.maximum(scores_cache.amax(-1, keepdim=True), score_new)
            w_cache = torch.exp(scores_cache - top)
            w_new = torch.exp(score_new - top)
            denom = w_cache.sum(-1, keepdim=True) + w_new
            y = (torch.matmul(w_cache, values[i]) + w_new * v) / denom  # [B, H, 1, D]
            h = h + layer.attn.out(y.transpose(1, 2).reshape(-1, 1, c.dim))
            h = h + layer.ffn(layer.ffn_norm(h))
            new_k.append(k[:, :, 0])
            new_v.append(v[:, :, 0])
        return self.temporal.norm(h)[:, 0], torch.stack(new_k), torch.stack(new_v)

    def _depth_position(
        self, x: Tensor, k: int, keys: list[list[Tensor]], values: list[list[Tensor]]
    ) -> Tensor:
        """Depth transformer at codebook position ``k`` for ``x`` ``[B, 1, depth_dim]``; appends this k/v."""
        c = self.config
        heads = c.depth_heads
        head_dim = c.depth_dim // heads
        for i, layer in enumerate(self.depth.layers):
            qkv = layer.attn.qkv(layer.attn_norm(x)).view(-1, 3, heads, 1, head_dim)
            if k:  # position 0 rotates by angle 0: the identity
                qk = _rope(qkv[:, :2], self.depth_cos[k], self.depth_sin[k], self.depth_rotate)
            else:
                qk = qkv[:, :2]
            q = qk[:, 0]
            keys[i].append(qk[:, 1])
            values[i].append(qkv[:, 2])
            kk = torch.cat(keys[i], dim=2) if k else keys[i][0]
            vv = torch.cat(values[i], dim=2) if k else values[i][0]
            y = F.scaled_dot_product_attention(q, kk, vv)
            x = x + layer.attn.out(y.transpose(1, 2).reshape(-1, 1, c.depth_dim))
            x = x + layer.ffn(layer.ffn_norm(x))
        return self.depth.norm(x)

    def _draw(self, logits: Tensor, uniform: Tensor) -> Tensor:
        if self.temperature <= 0:
            return logits.argmax(dim=-1)
        return inverse_cdf_sample(logits, self.temperature, self.top_k, uniform)

    # -- the step ----------------------------------------------------------------------------------------------
    def forward(
        self,
        user_codes: Tensor,
        prev_tokens: Tensor,
        positions: Tensor,
        uniforms: Tensor,
        force: Tensor,
        keys: list[Tensor],
        values: list[Tensor],
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``[B, n_q]`` user codes and previous system tokens, ``[B]`` positions and force codes, ``[B, n_q]``
        uniforms, per-layer caches -> (tokens ``[B, n_q]``, new keys, new values ``[layers, B, H, D]``)."""
        c = self.config
        x = F.embedding(user_codes + self.user_offsets, self.user_table).sum(1)
        x = x + F.embedding(prev_tokens + self.system_offsets, self.system_table).sum(1)
        h, new_k, new_v = self._temporal(x, positions, keys, values)
        projected = self.depth_in(h).view(-1, c.n_q, c.depth_dim)
        dkeys: list[list[Tensor]] = [[] for _ in self.depth.layers]
        dvalues: list[list[Tensor]] = [[] for _ in self.depth.layers]
        tokens: list[Tensor] = []
        for k in range(c.n_q):
            xk = projected[:, k : k + 1]
            if k:
                xk = xk + F.embedding(tokens[-1][:, None] + (k - 1) * c.vocab_size, self.depth_table)
            out = self._depth_position(xk, k, dkeys, dvalues)
            logits = self.heads[k](out[:, 0]).float() + self.never_start
            if k == 0:
                only_silence = (force == FORCE_SILENCE_ID)[:, None] & ~self.is_silence
                no_silence = (force == FORCE_SPEECH_ID)[:, None] & self.is_silence
                logits = logits.masked_fill(only_silence | no_silence, float("-inf"))
            tokens.append(self._draw(logits, uniforms[:, k]))
        return torch.stack(tokens, dim=1), new_k, new_v


class EncodeStep(nn.Module):
    """Graph 1 of a tick: codec-encode one frame per slot, then the S2S step on the codes.

    Flat tensor arguments (for export): ``pcm [B, frame]``, ``prev [B, n_q]``, ``positions [B]``,
    ``uniforms [B, n_q]``, ``force [B]``, then ``layers`` key caches, ``layers`` value caches, then the codec's
    encoder state tensors. Returns ``tokens, new_k, new_v, *new_encoder_state``.
    """

    def __init__(self, step: FusedS2SStep, codec) -> None:
        super().__init__()
        self.step = step
        self.codec = codec
        self.layers = len(step.temporal.layers)

    def forward(self, pcm, prev, positions, uniforms, force, *rest):
        n = self.layers
        keys, values, enc_state = list(rest[:n]), list(rest[n : 2 * n]), list(rest[2 * n :])
        user, new_state = self.codec.encode_frame(pcm, enc_state)
        tokens, new_k, new_v = self.step(user, prev, positions, uniforms, force, keys, values)
        return (tokens, new_k, new_v, *new_state)


class DecodeStep(nn.Module):
    """Graph 2 of a tick: decode each slot's newest system frame; slots with ``keep`` False keep their state.

    Frames that are silent or carry special tokens are replaced by ``silence_codes`` (what the codec makes of
    digital silence), as :func:`custom_model.s2s.generate.codec_frame` does. Arguments: ``frame [B, n_q]``,
    ``keep [B]`` bool, then the decoder state tensors. Returns ``pcm [B, frame_size], *new_decoder_state``.
    """

    def __init__(self, codec, silence_codes: Tensor, card: int) -> None:
        super().__init__()
        self.codec = codec
        self.card = card
        self.register_buffer("silence_codes", silence_codes.reshape(1, -1).long())

    def forward(self, frame, keep, *state):
        replace = (frame[:, :1] >= self.card) | (frame >= self.card)
        codes = torch.where(replace, self.silence_codes.expand_as(frame), frame)
        pcm, new_state = self.codec.decode_frame(codes, list(state))
        kept = []
        for old, new in zip(state, new_state, strict=True):
            mask = keep.reshape((-1,) + (1,) * (old.dim() - 1))
            kept.append(torch.where(mask, new, old))
        return (pcm, *kept)
