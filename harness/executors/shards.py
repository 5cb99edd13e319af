"""Shards: a deterministic partition of a run's utterances, so that any scheduler can run a run in N pieces.

The partition (method ``sha256-rank/1``): the utterances of the run's data selection (after ``--split`` and
``--limit``) are ranked by the sha256 of their id (UTF-8), and the utterance of rank *r* goes to shard
``r mod N``. So shard ``I/N``:

- depends on nothing but the ids of the selection: the same on every machine, whatever order the data lists them
  in (a manifest shuffled, a file system that lists a folder in another order);
- holds ``n // N`` or ``n // N + 1`` utterances: shards are balanced (a plain hash modulo N can leave one shard
  with twice another's share on a small set);
- together with the other N - 1 shards, holds every utterance exactly once.

Shard indices count from 0, as SLURM's ``SLURM_ARRAY_TASK_ID`` (with ``--array=0-N-1``) and Kubernetes' indexed
Jobs (``JOB_COMPLETION_INDEX``) do. A shard's run.json records the partition (``shard``) so that
``s2s-bench merge`` can check that the shards it is given belong together (:mod:`harness.executors.merge`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

SHARD_METHOD = "sha256-rank/1"
"""The name run.json records for the partition; a different partition would get another name."""

_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")

T = TypeVar("T")


class ShardError(ValueError):
    """A shard that cannot be: a bad ``I/N`` spelling, an index out of range, more shards than utterances."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (from 0) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ShardError(f"Expected a shard count N >= 1 but got {self.count}")
        if not 0 <= self.index < self.count:
            raise ShardError(
                f"Expected a shard index I with 0 <= I < N={self.count} but got {self.index} "
                f"(indices count from 0: --shard 0/{self.count} ... --shard {self.count - 1}/{self.count})"
            )

    @classmethod
    def parse(cls, text: str | Shard) -> Shard:
        """``"I/N"`` (e.g. ``"0/4"``) as a :class:`Shard`; raises :class:`ShardError` naming the bad value."""
        if isinstance(text, Shard):
            return text
        m = _SHARD_RE.match(str(text))
        if not m:
            raise ShardError(
                f"Expected a shard as I/N (e.g. 0/4: the first of 4 shards) but got {text!r}; in a SLURM array: "
                "--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT"
            )
        return cls(int(m[1]), int(m[2]))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_rank_key(utt_id: str) -> tuple[str, str]:
    """What the partition sorts by: the sha256 of the id, then the id itself (a tie is astronomically rare)."""
    return hashlib.sha256(utt_id.encode("utf-8")).hexdigest(), utt_id


def assign(ids: Sequence[str], count: int) -> dict[str, int]:
    """Each id's shard index in a partition of ``ids`` into ``count`` shards (method ``sha256-rank/1``)."""
    ranked = sorted(set(ids), key=shard_rank_key)
    return {uid: rank % count for rank, uid in enumerate(ranked)}


def sizes(n: int, count: int) -> list[int]:
    """How many utterances each of ``count`` shards of ``n`` holds."""
    return [n // count + (1 if i < n % count else 0) for i in range(count)]


def select(items: Sequence[T], shard: Shard | str, id_of=lambda u: u.id) -> tuple[list[T], dict]:
    """The items of ``shard`` (in their original order) and the ``shard`` record for run.json.

    The record: ``index``, ``count``, ``method``, ``n`` (this shard's utterances), ``sizes`` (every shard's, so that
    a merge knows how many each should have) and ``ids`` (this shard's utterance ids, in run order).
    """
    shard = Shard.parse(shard)
    ids = [id_of(u) for u in items]
    if len(set(ids)) != len(ids):
        raise ShardError("Cannot shard utterances with duplicate ids; `s2s-bench data check` lists them")
    if shard.count > len(ids):
        raise ShardError(
            f"--shard {shard}: the data selection has only {len(ids)} utterance(s), so {shard.count} shards would "
            f"leave some empty; use at most {len(ids)} shards"
        )
    where = assign(ids, shard.count)
    chosen = [u for u, uid in zip(items, ids, strict=True) if where[uid] == shard.index]
    record = {
        "index": shard.index,
        "count": shard.count,
        "method": SHARD_METHOD,
        "n": len(chosen),
        "sizes": sizes(len(ids), shard.count),
        "ids": [id_of(u) for u in chosen],
    }
    return chosen, record


def split_ids(ids: Sequence[str], count: int) -> list[list[str]]:
    """``ids`` cut into ``count`` shards (each keeps the ids' order); fewer shards when there are fewer ids."""
    count = max(1, min(count, len(set(ids)) or 1))
    where = assign(ids, count)
    out: list[list[str]] = [[] for _ in range(count)]
    for uid in ids:
        out[where[uid]].append(uid)
    return out
