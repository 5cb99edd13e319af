"""A key/value cache bounded by a context length, used as a ring buffer (after moshi's ``RingKVCache``).

The cache holds the last ``context`` keys and values of one attention layer. Keys are stored already rotated by
RoPE at their absolute positions, so slot order does not matter: a query at position ``p`` may attend to every slot
whose position lies in ``(p - context, p]``. Memory and per-step cost stay constant however long a session runs.
"""

from __future__ import annotations

import torch


class RingKVCache:
    """Keys and values of shape ``[batch, heads, context, head_dim]`` written at ``position % context``.

    ``slot_positions[i]`` is the absolute position held by slot ``i`` (-1 while empty).
    """

    def __init__(
        self,
        batch_size: int,
        num_heads: int,
        context: int,
        head_dim: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if context < 1:
            raise ValueError(f"Expected a context of at least 1 position but got {context}")
        self.context = context
        self.keys = torch.zeros(batch_size, num_heads, context, head_dim, device=device, dtype=dtype)
        self.values = torch.zeros_like(self.keys)
        self.slot_positions = torch.full((context,), -1, dtype=torch.long, device=device)
        self.next_position = 0

    def reset(self) -> None:
        """Forget everything; the next write is position 0 again."""
        self.slot_positions.fill_(-1)
        self.next_position = 0

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Write ``k``/``v`` (``[B, H, T, D]``, the next ``T`` positions) and return every slot plus a mask.

        Returns ``(keys, values, mask)`` where ``mask`` (``[T, context]``, True = may attend) lets query ``j`` see
        exactly the positions in ``(p_j - context, p_j]``. ``T`` may not wrap over slots a query still needs, so
        it is limited to what fits before the ring wraps; streaming calls it with ``T == 1``.
        """
        steps = k.shape[2]
        start = self.next_position
        if steps > 1 and steps > self.context - (start % self.context) and start + steps > self.context:
            raise ValueError(
                f"Cannot write {steps} positions at once at position {start} into a ring of {self.context}; "
                "write one position at a time"
            )
        positions = torch.arange(start, start + steps, device=self.slot_positions.device)
        slots = positions % self.context
        self.keys[:, :, slots] = k.to(self.keys.dtype)
        self.values[:, :, slots] = v.to(self.values.dtype)
        self.slot_positions[slots] = positions
        self.next_position = start + steps
        held = self.slot_positions[None, :]
        query = positions[:, None]
        mask = (held >= 0) & (held <= query) & (held > query - self.context)
        return self.keys, self.values, mask
