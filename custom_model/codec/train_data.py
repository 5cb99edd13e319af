"""Training audio for the codec: splits of one or more datasets, and endless batches of random crops.

The crops of a step are drawn as one *global* batch from a generator seeded alike on every rank, and each rank takes
its slice; so N processes with batch b see exactly the crops (and gains, and numbers of codebooks kept) that one
process with batch N * b sees, and a checkpoint records where the stream stands (exact resume, any world size).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

HELD_OUT_SPLITS = ("dev", "validation", "valid", "test")


def load_split_audio(
    data: str, split: str | None, sample_rate: int, limit: int | None = None
) -> tuple[list[np.ndarray], list[str]]:
    """Audio of one split (None: all but held-out splits) as float32 arrays; unreadable utterances are skipped with
    a message naming them."""
    from harness.audio import AudioError
    from harness.data import load_utterances

    arrays, ids = [], []
    utts = load_utterances(data, split=split)
    if split is None and any(u.split not in HELD_OUT_SPLITS for u in utts):
        utts = [u for u in utts if u.split not in HELD_OUT_SPLITS]
    for utt in utts[:limit]:
        try:
            arrays.append(utt.load_audio(sample_rate))
            ids.append(utt.id)
        except AudioError as exc:
            print(f"[data] skipping {utt.id}: {exc}", file=sys.stderr)
    return arrays, ids


def pick_splits(data: str) -> tuple[str | None, str | None]:
    """(train split, held-out split): ``train`` and the first of dev/validation/valid/test the dataset has.

    Without a ``train`` split the training split is None: every utterance not in a held-out split (or, if that
    leaves nothing, every utterance, which then overlaps the held-out one; a message says so).
    """
    from harness.data import load_utterances

    splits = {u.split for u in load_utterances(data)}
    held = next((s for s in HELD_OUT_SPLITS if s in splits), None)
    if "train" in splits:
        return "train", held
    if not splits - set(HELD_OUT_SPLITS):
        print(
            f"[data] {data} has no training split: training on all of it, held-out metrics are not held out",
            file=sys.stderr,
        )
    return None, held


def load_training_audio(
    datasets: list[str],
    sample_rate: int,
    train_split: str | None = None,
    dev_split: str | None = None,
    limit: int | None = None,
    dev_limit: int = 0,
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """(training arrays, held-out arrays, one line per dataset saying what was used) for several datasets.

    The held-out audio comes from the first dataset that has a held-out split (``dev_limit`` utterances).
    """
    train, dev, lines = [], [], []
    for data in datasets:
        split, held = (train_split, dev_split) if train_split else pick_splits(data)
        arrays, _ = load_split_audio(data, split, sample_rate, limit=limit)
        train += arrays
        line = f"{data}: {len(arrays)} training utterances ({sum(a.size for a in arrays) / sample_rate / 3600:.2f} h"
        line += f", split {split or 'all'})"
        if dev_limit and held and not dev:
            dev, _ = load_split_audio(data, held, sample_rate, limit=dev_limit)
            line += f", {len(dev)} held-out ({held})"
        lines.append(line)
    return train, dev, lines


class RandomCrops:
    """Endless batches of random ``segment`` crops: utterances picked in proportion to length, gain -12..0 dB
    below full scale, and per item the number of codebooks to keep (quantizer dropout; ``n_q`` when not dropped).

    ``next(crops)`` returns ``(wav [batch, 1, segment], n_q [batch])`` for this rank's slice of the global batch.
    """

    def __init__(
        self,
        arrays: list[np.ndarray],
        segment: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        n_q: int = 8,
        quantizer_dropout: float = 0.0,
    ) -> None:
        if not arrays:
            raise ValueError("no training audio: check --data and --train-split")
        self.arrays, self.segment, self.batch_size = arrays, segment, batch_size
        self.rank, self.world_size = rank, world_size
        self.n_q, self.quantizer_dropout = n_q, quantizer_dropout
        lengths = np.array([a.size for a in arrays], dtype=np.float64)
        self.p = lengths / lengths.sum()
        self.rng = np.random.default_rng(seed)

    def __iter__(self):
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        total = self.batch_size * self.world_size
        picks = self.rng.choice(len(self.arrays), size=total, p=self.p)
        starts = self.rng.random(total)
        gains_db = self.rng.uniform(-12, 0, size=total)
        dropped = self.rng.random(total) < self.quantizer_dropout
        kept = np.where(dropped, self.rng.integers(1, self.n_q + 1, size=total), self.n_q)
        mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        out = np.zeros((self.batch_size, 1, self.segment), dtype=np.float32)
        for b, (i, u, g) in enumerate(zip(picks[mine], starts[mine], gains_db[mine], strict=True)):
            a = self.arrays[i]
            start = int(u * max(1, a.size - self.segment + 1))
            crop = a[start : start + self.segment]
            peak = float(np.abs(crop).max()) + 1e-6
            out[b, 0, : crop.size] = crop * min(10 ** (g / 20) * 0.95 / peak, 10.0)
        return torch.from_numpy(out), torch.from_numpy(kept[mine].astype(np.int64))

    # The stream's position, for checkpoints (``state_dict``/``load_state_dict``, as the trainer expects).
    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
