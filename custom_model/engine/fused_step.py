"""One 20 ms tick for a batch of slots as two static-shape graphs: ``encode + S2S step`` and ``decode``.

Why: the per-session path (``StreamingGenerator`` + ``CodecStream``) runs hundreds of tiny PyTorch ops per frame
with Python between them (ring-cache bookkeeping, a mask per layer, eight depth steps each re-entering the
transformer, per-op allocations). Here the same arithmetic is written once as a pure function of tensors with
shapes that depend only on the batch size ``B``, so that it can be traced (TorchScript), compiled
(``torch.compile``) or exported (ONNX Runtime), and so that every live session runs in the same ops:

- the user's and the system's ``n_q`` token embeddings are two gathers from concatenated tables;
- the temporal attention reads the ring KV cache as it is (no write inside the graph) and adds the new key as one
  extra score, so the graph returns the new keys/values (``[B, heads, layers, head_dim]``) and the host writes
  them into the ring with one indexed copy per tick; the mask comes from each slot's position alone;
- the depth loop over the ``n_q`` codebooks is unrolled; its attention context is the handful of keys of this
  frame, held in the graph;
- tokens are drawn in the graph: greedy is ``argmax``; sampling maps per-slot uniforms (drawn on the host from
  each session's own generator) through the inverse CDF, exactly as :func:`custom_model.s2s.generate.sample_token`.

At batch 1 a tick's cost is mostly the number of graph nodes (1-3 us each on a one-row tensor: ONNX Runtime's
dispatch plus each kernel's fixed cost), not arithmetic, so the step is written for few nodes: rows of
``[B, features]`` (no sequence axis), the attention scale folded into the query weights, the depth transformer's
RoPE folded into one ``qkv`` weight per codebook position (a rotation by a constant angle is a linear map), keys
and values held per head as columns so no transpose is needed. Graph version 3 (2026-12-07) took the S2S step
from 806 to 534 nodes of ONNX Runtime's optimised graph (the whole encode graph from 1,174 to 812); version 4
(2026-12-08) dropped the decode graph's ``keep`` mask and, with the codec slicing by constants, took the encode
graph to 693 nodes and the decode graph from 273 to 156 (``reports/engine.md``).

Every row is independent of the others, so a session's tokens do not depend on who else is in the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from custom_model.s2s.generate import inverse_cdf_sample
from custom_model.s2s.model import S2SModel

GRAPH_VERSION = "4"
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


def _linear(weight: Tensor, device, dtype) -> nn.Linear:
    """A bias-free ``nn.Linear`` holding ``weight`` (``[out, in]``)."""
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        linear.weight.copy_(weight)
    return linear.to(device, dtype)


def _fold_qkv(weight: Tensor, heads: int, position: int | None, theta: float) -> Tensor:
    """An attention's ``qkv`` weight ``[3 * dim, dim]`` with ``1 / sqrt(head_dim)`` folded into the query rows and,
    for a constant ``position``, RoPE's rotation at that position folded into the query and key rows.

    RoPE (rotate-half) maps a head's ``y`` to ``y * cos + rotate_half(y) * sin``: for a fixed angle that is a
    matrix ``R``, so ``R (W x) = (R W) x``. Computed in float64, then cast back.
    """
    w = weight.detach().to(torch.float64).clone()
    dim = w.shape[1]
    head_dim = dim // heads
    w[:dim] /= math.sqrt(head_dim)
    if position:
        half = head_dim // 2
        freqs = theta ** (-torch.arange(half, dtype=torch.float64) / half)
        cos = torch.cos(position * freqs).repeat(2)
        sin = torch.sin(position * freqs).repeat(2)
        rot = torch.diag(cos)
        rot[torch.arange(half), torch.arange(half) + half] = -sin[:half]  # y1' = y1 cos - y2 sin
        rot[torch.arange(half) + half, torch.arange(half)] = sin[half:]  # y2' = y2 cos + y1 sin
        for part in (0, 1):  # queries, keys
            rows = w[part * dim : (part + 1) * dim].view(heads, head_dim, dim)
            w[part * dim : (part + 1) * dim] = torch.matmul(rot, rows).reshape(dim, dim)
    return w.to(weight.dtype)


class FusedS2SStep(nn.Module):
    """The S2S model's streaming step for ``B`` slots: ``(user codes, previous tokens, positions, ...) -> tokens``.

    Uses the model's own ``nn.Linear`` and ``nn.RMSNorm`` modules where it can (so dynamic quantisation of linears
    reaches it); made once from the model's weights: the concatenated embedding tables, the eight depth input
    projections as one linear, the temporal ``qkv`` with the attention scale folded into its query rows, and for
    every depth position and layer a ``qkv`` with the scale and that position's RoPE rotation folded into its
    query and key rows (a rotation by a constant angle is a linear map). Everything runs on ``[B, features]``
    rows (no sequence axis), which keeps the exported graph small: at batch 1 a tick's cost is mostly the number
    of graph nodes, not arithmetic.
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
        device, dtype = weight.device, weight.dtype
        self.register_buffer("user_table", torch.cat([e.weight for e in model.user_emb]).detach().clone())
        self.register_buffer("system_table", torch.cat([e.weight for e in model.system_emb]).detach().clone())
        self.depth_tables = (
            nn.ParameterList(  # one table per depth position 1..n_q-1: a gather with no offset
                nn.Parameter(e.weight.detach().clone(), requires_grad=False) for e in model.depth_emb
            )
        )
        self.register_buffer("user_offsets", torch.arange(c.n_q, device=device) * c.card)
        self.register_buffer("system_offsets", torch.arange(c.n_q, device=device) * c.vocab_size)
        self.depth_in = _linear(torch.cat([p.weight for p in model.depth_in]), device, dtype)
        t_head = c.dim // c.num_heads
        self.temporal_qkv = nn.ModuleList(
            _linear(_fold_qkv(layer.attn.qkv.weight, c.num_heads, None, c.rope_theta), device, dtype)
            for layer in model.temporal.layers
        )
        self.depth_qkv = nn.ModuleList(  # [position][layer]
            nn.ModuleList(
                _linear(_fold_qkv(layer.attn.qkv.weight, c.depth_heads, k, c.rope_theta), device, dtype)
                for layer in model.depth.layers
            )
            for k in range(c.n_q)
        )
        t_half = t_head // 2
        t_freqs = c.rope_theta ** (-torch.arange(t_half, dtype=torch.float32) / t_half)
        self.register_buffer("temporal_freqs", torch.cat([t_freqs, t_freqs]).to(device))
        self.register_buffer("temporal_rotate", _rotate_half_matrix(t_head, device, dtype))
        self.register_buffer("ring_slots", torch.arange(c.context, device=device))
        never = torch.zeros(c.vocab_size, device=device)
        never[c.start_id] = float("-inf")  # the start token is never a valid output
        self.register_buffer("never_start", never)
        silence = torch.zeros(c.vocab_size, dtype=torch.bool, device=device)
        silence[c.silence_id] = True
        self.register_buffer("is_silence", silence)

    # -- pieces ------------------------------------------------------------------------------------------------
    def _temporal(self, x: Tensor, positions: Tensor, keys: list[Tensor], values: list[Tensor]):
        """``x`` ``[B, dim]``; caches ``[B, H, context, D]`` per layer -> (output ``[B, dim]``, new keys and new
        values ``[B, H, layers, D]``).

        The ring is read as it is and the new key joins as one extra score: the softmax runs over
        ``[ring scores | new score]`` and the output is ``w_ring @ V + w_new * v``.
        """
        c = self.config
        heads, head_dim, context = c.num_heads, c.dim // c.num_heads, c.context
        angles = positions.to(torch.float32)[:, None] * self.temporal_freqs[None, :]
        cos = angles.cos().to(x.dtype)[:, None, None, :]  # [B, 1, 1, D]: q and k together
        sin = angles.sin().to(x.dtype)[:, None, None, :]
        ring = self.ring_slots[None, :]
        p = positions[:, None]
        valid = (ring < p) & (ring != p % context)  # held positions in (p - context, p - 1]
        bias = torch.where(valid, 0.0, float("-inf")).to(x.dtype)[:, None, None, :]
        new_k, new_v = [], []
        h = x
        for i, layer in enumerate(self.temporal.layers):
            qkv = self.temporal_qkv[i](layer.attn_norm(h)).view(-1, 3 * heads, 1, head_dim)
            qk, v = qkv.split([2 * heads, heads], dim=1)  # v [B, H, 1, D]
            qk = _rope(qk, cos, sin, self.temporal_rotate)
            q, k = qk.split([heads, heads], dim=1)  # q already scaled by 1 / sqrt(D) (folded into qkv)
            scores = torch.cat([torch.matmul(q, keys[i].transpose(-1, -2)) + bias, (q * k).sum(-1, True)], -1)
            w_ring, w_new = torch.softmax(scores, dim=-1).split([context, 1], dim=-1)
            y = torch.matmul(w_ring, values[i]) + w_new * v  # [B, H, 1, D]
            h = h + layer.attn.out(y.reshape(-1, c.dim))
            h = h + layer.ffn(layer.ffn_norm(h))
            new_k.append(k)
            new_v.append(v)
        return self.temporal.norm(h), torch.cat(new_k, dim=2), torch.cat(new_v, dim=2)

    def _depth_position(self, x: Tensor, k: int, keys: list[list[Tensor]], values: list[list[Tensor]]):
        """Depth transformer at codebook position ``k`` for ``x`` ``[B, depth_dim]``; appends this k/v.

        Per head the keys are held as columns ``[B, H, D, k + 1]`` and the values too, so the scores are
        ``q_row @ K`` and the output ``V @ w_column``, which is already in ``[B, H * D]`` order."""
        c = self.config
        heads = c.depth_heads
        head_dim = c.depth_dim // heads
        for i, layer in enumerate(self.depth.layers):
            qkv = self.depth_qkv[k][i](layer.attn_norm(x)).view(-1, 3 * heads, head_dim, 1)
            q, kc, vc = qkv.split([heads, heads, heads], dim=1)  # columns [B, H, D, 1], q scaled and rotated
            keys[i].append(kc)
            values[i].append(vc)
            if k:
                kk = torch.cat(keys[i], dim=-1)  # [B, H, D, k + 1]
                vv = torch.cat(values[i], dim=-1)
                w = torch.softmax(torch.matmul(q.view(-1, heads, 1, head_dim), kk), dim=-1)
                y = torch.matmul(vv, w.view(-1, heads, k + 1, 1))  # [B, H, D, 1]
            else:  # one key: its weight is exactly 1
                y = vc
            x = x + layer.attn.out(y.reshape(-1, c.depth_dim))
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
        uniforms, per-layer caches -> (tokens ``[B, n_q]``, new keys, new values ``[B, H, layers, D]``)."""
        c = self.config
        x = F.embedding(user_codes + self.user_offsets, self.user_table).sum(1)
        x = x + F.embedding(prev_tokens + self.system_offsets, self.system_table).sum(1)
        h, new_k, new_v = self._temporal(x, positions, keys, values)
        projected = self.depth_in(h).view(-1, c.n_q, c.depth_dim).unbind(1)
        dkeys: list[list[Tensor]] = [[] for _ in self.depth.layers]
        dvalues: list[list[Tensor]] = [[] for _ in self.depth.layers]
        tokens: list[Tensor] = []
        for k in range(c.n_q):
            xk = projected[k]
            if k:
                xk = xk + F.embedding(tokens[-1], self.depth_tables[k - 1])
            out = self._depth_position(xk, k, dkeys, dvalues)
            logits = self.heads[k](out)
            logits = (logits if logits.dtype == torch.float32 else logits.float()) + self.never_start
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
    """Graph 2 of a tick: decode each row's newest system frame (the engine passes the rows of the sessions that
    answer, so every row's state moves on).

    Frames that are silent or carry special tokens are replaced by ``silence_codes`` (what the codec makes of
    digital silence), as :func:`custom_model.s2s.generate.codec_frame` does. Arguments: ``frame [B, n_q]``, then
    the decoder state tensors. Returns ``pcm [B, frame_size], *new_decoder_state``. (Before graph version 4 a
    ``keep [B]`` mask chose per row between the new and the old state; the engine always passed all True.)
    """

    def __init__(self, codec, silence_codes: Tensor, card: int) -> None:
        super().__init__()
        self.codec = codec
        self.card = card
        self.register_buffer("silence_codes", silence_codes.reshape(1, -1).long())

    def forward(self, frame, *state):
        replace = (frame[:, :1] >= self.card) | (frame >= self.card)
        codes = torch.where(replace, self.silence_codes, frame)  # broadcast: no Shape/Expand nodes
        pcm, new_state = self.codec.decode_frame(codes, list(state))
        return (pcm, *new_state)
