"""Explicit streaming state: named tensors with a batch dimension, one row per stream (a session's slot).

A batched server keeps the state of many sessions in one :class:`StreamState` and steps them together; sessions
join and leave, so rows are created, reset, gathered and written back by slot::

    state = codec.init_encoder_state(batch_size=8)          # 8 fresh streams
    codes, state = codec.encode_frames(wav_8x320, state)    # one 20 ms frame for every slot
    state.reset_([3])                                       # slot 3 starts a new session
    two = state.select([0, 5])                              # the state of slots 0 and 5 (a copy)
    state.assign_([0, 5], two)                              # and back
    both = StreamState.cat([state_a, state_b])              # concatenated along the batch

Each tensor's batch dimension is recorded (0 for most, 1 for an LSTM's ``(layers, batch, hidden)``), and a fresh
row is all zeros for every codec in this package, so :meth:`reset_` is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

Slots = Sequence[int] | Tensor


def _index(slots: Slots, device: torch.device) -> Tensor:
    return torch.as_tensor(slots, dtype=torch.long, device=device).reshape(-1)


@dataclass
class StreamState:
    """Named state tensors of one stream direction (encoder or decoder) for ``batch_size`` streams."""

    tensors: dict[str, Tensor]
    batch_dims: dict[str, int] = field(default_factory=dict)  # name -> batch dimension (default 0)

    def batch_dim(self, name: str) -> int:
        return self.batch_dims.get(name, 0)

    @property
    def batch_size(self) -> int:
        name, t = next(iter(self.tensors.items()))
        return t.shape[self.batch_dim(name)]

    @property
    def device(self) -> torch.device:
        return next(iter(self.tensors.values())).device

    def select(self, slots: Slots) -> StreamState:
        """A new state holding the rows ``slots`` (in that order); the tensors are copies."""
        idx = _index(slots, self.device)
        return StreamState(
            {k: v.index_select(self.batch_dim(k), idx) for k, v in self.tensors.items()},
            dict(self.batch_dims),
        )

    def reset_(self, slots: Slots | None = None) -> StreamState:
        """Make ``slots`` (all when None) fresh streams again, in place; returns ``self``."""
        for k, v in self.tensors.items():
            if slots is None:
                v.zero_()
            else:
                v.index_fill_(self.batch_dim(k), _index(slots, v.device), 0.0)
        return self

    def assign_(self, slots: Slots, other: StreamState) -> StreamState:
        """Write ``other``'s rows into ``slots`` (``len(slots) == other.batch_size``), in place; returns ``self``."""
        idx = _index(slots, self.device)
        if idx.numel() != other.batch_size:
            raise ValueError(f"{idx.numel()} slots for a state of batch size {other.batch_size}")
        if set(other.tensors) != set(self.tensors):
            raise ValueError(f"state tensors differ: {sorted(other.tensors)} vs {sorted(self.tensors)}")
        for k, v in self.tensors.items():
            v.index_copy_(self.batch_dim(k), idx, other.tensors[k].to(v.dtype))
        return self

    def clone(self) -> StreamState:
        return StreamState({k: v.clone() for k, v in self.tensors.items()}, dict(self.batch_dims))

    @staticmethod
    def cat(states: Sequence[StreamState]) -> StreamState:
        """Concatenate states along the batch (the streams of ``states[0]`` first)."""
        if not states:
            raise ValueError("StreamState.cat needs at least one state")
        first = states[0]
        return StreamState(
            {k: torch.cat([s.tensors[k] for s in states], dim=first.batch_dim(k)) for k in first.tensors},
            dict(first.batch_dims),
        )
