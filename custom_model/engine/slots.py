"""Preallocated per-slot state for the batched engine, and one tick over the first ``B`` slots.

Every state tensor has the slot as its first dimension (KV caches ``[layers, slots, heads, context, head_dim]``
are the exception: slot second, so one layer's rows ``[:B]`` are one contiguous block) and is allocated once,
for ``max_slots``. Live sessions always occupy slots ``0 .. n-1``: a session that leaves is replaced by the last
one (:meth:`SlotState.move`), so a tick runs on contiguous views ``[:B]``, never on copies of the KV rings; rows
of sessions that do not step in a tick are computed beside the others and not written back (``stepping``). Per
tick the host does only this: draw each stepping slot's uniforms from its own generator (sampling only), one call
into the step graph, one indexed write of the new keys/values into the rings, copies of the codec states, and
(when some slot is answering) one call into the decode graph.
"""

from __future__ import annotations

import torch
from torch import Tensor

from custom_model.s2s.model import S2SModel

from .codec_api import FrameCodec


class SlotState:
    """All streaming state of ``max_slots`` sessions: KV rings, previous tokens, positions, codec states, RNGs."""

    def __init__(
        self,
        model: S2SModel,
        codec: FrameCodec,
        max_slots: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        c = self.config = model.config
        self.codec = codec
        self.max_slots = max_slots
        self.device = torch.device(device)
        self.dtype = dtype
        layers = len(model.temporal.layers)
        head_dim = c.dim // c.num_heads
        shape = (layers, max_slots, c.num_heads, c.context, head_dim)
        self.keys = torch.zeros(shape, device=self.device, dtype=dtype)
        self.values = torch.zeros(shape, device=self.device, dtype=dtype)
        self.prev = torch.full((max_slots, c.n_q), c.start_id, dtype=torch.long, device=self.device)
        self.positions = torch.zeros(max_slots, dtype=torch.long, device=self.device)
        self.force = torch.zeros(max_slots, dtype=torch.long, device=self.device)
        self.uniforms = torch.zeros(max_slots, c.n_q, device=self.device)
        self.enc_state = codec.encoder_state(max_slots, self.device)
        self.dec_state = codec.decoder_state(max_slots, self.device)
        self._enc_fresh = codec.encoder_state(1, self.device)
        self._dec_fresh = codec.decoder_state(1, self.device)
        self.generators: list[torch.Generator | None] = [None] * max_slots
        self._slot_index = torch.arange(max_slots, device=self.device)

    # -- bookkeeping -------------------------------------------------------------------------------------------
    def reset(self, slot: int, seed: int | None) -> None:
        """A new session in ``slot``: start token, position 0, fresh codec states, its own sampling generator."""
        self.prev[slot] = self.config.start_id
        self.positions[slot] = 0
        self.force[slot] = 0
        for state, fresh in zip(
            self.enc_state + self.dec_state, self._enc_fresh + self._dec_fresh, strict=True
        ):
            state[slot] = fresh[0]
        self.generators[slot] = None if seed is None else torch.Generator().manual_seed(int(seed))

    def move(self, src: int, dst: int) -> None:
        """Move the session in slot ``src`` into slot ``dst`` (every state row, the ring included)."""
        self.keys[:, dst] = self.keys[:, src]
        self.values[:, dst] = self.values[:, src]
        for t in (self.prev, self.positions, self.force, *self.enc_state, *self.dec_state):
            t[dst] = t[src]
        self.generators[dst] = self.generators[src]
        self.generators[src] = None

    # -- the tick ----------------------------------------------------------------------------------------------
    def step_inputs(
        self, pcm: Tensor, sampling: bool, stepping: list[int] | None = None
    ) -> tuple[Tensor, ...]:
        """The flat argument list of :class:`EncodeStep` for the first ``B = pcm.shape[0]`` slots (views).

        ``stepping``: the slots among them that really step (default: all); only they draw sampling uniforms
        from their generators (the others' rows are computed and thrown away, see :meth:`commit_step`).
        """
        b = pcm.shape[0]
        if sampling:
            for slot in range(b) if stepping is None else stepping:
                gen = self.generators[slot]
                self.uniforms[slot] = torch.rand(self.config.n_q, generator=gen)
        layers = self.keys.shape[0]
        return (
            pcm,
            self.prev[:b],
            self.positions[:b],
            self.uniforms[:b],
            self.force[:b],
            *(self.keys[i, :b] for i in range(layers)),
            *(self.values[i, :b] for i in range(layers)),
            *(t[:b] for t in self.enc_state),
        )

    def commit_step(
        self, outputs: tuple[Tensor, ...], stepping: list[int] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Write a step's outputs into the state; returns (step tokens ``[B, n_q]``, newest frame ``[B, n_q]``).

        ``stepping``: write only these slots (default: all ``B``); the other rows were computed beside them
        (a contiguous batch is far cheaper than gathering the rows' KV caches) and are left as they were.
        The frame undoes the acoustic delay (codebook 1 of the previous step, 2.. of this one); it is meaningful
        only for slots past their first step.
        """
        tokens, new_k, new_v, *enc = outputs
        b = tokens.shape[0]
        frame = torch.cat([self.prev[:b, :1], tokens[:, 1:]], dim=1)
        if stepping is not None and len(stepping) < b:
            rows = torch.tensor(stepping, device=self.device)
            self._write_step(rows, tokens[rows], new_k[rows], new_v[rows], [t[rows] for t in enc])
            return tokens, frame
        slots = self._slot_index[:b]
        ring = self.positions[:b] % self.config.context
        self.keys[:, slots, :, ring] = new_k.transpose(1, 2).to(self.dtype)  # [B, H, L, D] -> [B, L, H, D]
        self.values[:, slots, :, ring] = new_v.transpose(1, 2).to(self.dtype)
        for state, new in zip(self.enc_state, enc, strict=True):
            state[:b] = new
        self.prev[:b] = tokens
        self.positions[:b] += 1
        return tokens, frame

    def _write_step(
        self, rows: Tensor, tokens: Tensor, new_k: Tensor, new_v: Tensor, enc: list[Tensor]
    ) -> None:
        """Write one step's results of the slots ``rows`` (the tensors hold those rows only, in that order)."""
        ring = self.positions[rows] % self.config.context
        self.keys[:, rows, :, ring] = new_k.transpose(1, 2).to(self.dtype)
        self.values[:, rows, :, ring] = new_v.transpose(1, 2).to(self.dtype)
        for state, new in zip(self.enc_state, enc, strict=True):
            state[rows] = new
        self.prev[rows] = tokens
        self.positions[rows] += 1

    def step_inputs_rows(self, pcm: Tensor, rows: Tensor, sampling: bool) -> tuple[Tensor, ...]:
        """Like :meth:`step_inputs` for the slots ``rows`` (gathered copies, in that order)."""
        if (
            sampling
        ):  # once per distinct slot: padding repeats a slot and must not draw from its generator again
            for slot in dict.fromkeys(rows.tolist()):
                self.uniforms[slot] = torch.rand(self.config.n_q, generator=self.generators[slot])
        keys = self.keys.index_select(1, rows)
        values = self.values.index_select(1, rows)
        return (
            pcm,
            self.prev[rows],
            self.positions[rows],
            self.uniforms[rows],
            self.force[rows],
            *keys.unbind(0),
            *values.unbind(0),
            *(t[rows] for t in self.enc_state),
        )

    def commit_step_rows(self, outputs: tuple[Tensor, ...], rows: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """Like :meth:`commit_step` for a batch gathered from the slots ``rows``; only the first ``n`` rows are
        real (the rest repeat one of them to fill a prepared batch size) and only they are written back."""
        tokens, new_k, new_v, *enc = outputs
        rows, tokens = rows[:n], tokens[:n]
        frame = torch.cat([self.prev[rows, :1], tokens[:, 1:]], dim=1)
        self._write_step(rows, tokens, new_k[:n], new_v[:n], [t[:n] for t in enc])
        return tokens, frame

    def decode_inputs_rows(self, frame: Tensor, rows: Tensor) -> tuple[Tensor, ...]:
        return (frame, *(t[rows] for t in self.dec_state))

    def commit_decode_rows(self, outputs: tuple[Tensor, ...], rows: Tensor, n: int) -> Tensor:
        pcm, *dec = outputs
        for state, new in zip(self.dec_state, dec, strict=True):
            state[rows[:n]] = new[:n]
        return pcm

    def decode_inputs(self, frame: Tensor) -> tuple[Tensor, ...]:
        b = frame.shape[0]
        return (frame, *(t[:b] for t in self.dec_state))

    def commit_decode(self, outputs: tuple[Tensor, ...]) -> Tensor:
        pcm, *dec = outputs
        b = pcm.shape[0]
        for state, new in zip(self.dec_state, dec, strict=True):
            state[:b] = new
        return pcm
