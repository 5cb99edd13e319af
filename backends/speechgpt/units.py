"""Speech -> discrete units: HuBERT features from one layer, nearest k-means centroid per 20 ms frame.

SpeechGPT uses mHuBERT (layer 11) with 1000 k-means centroids; any ``HubertModel`` folder and a ``.npy`` of
centroids (K x hidden) work here. Consecutive repeats are merged (SpeechGPT's "reduced" units).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class UnitExtractor:
    """``units(audio)``: float32 mono 16 kHz -> list of unit ids (0..K-1), one per 20 ms frame, repeats merged."""

    def __init__(self, hubert: Any, centroids: np.ndarray, layer: int) -> None:
        import torch

        n_layers = hubert.config.num_hidden_layers
        if not 1 <= layer <= n_layers:
            raise ValueError(f"Expected a HuBERT layer in 1..{n_layers} but got {layer}")
        if centroids.ndim != 2 or centroids.shape[1] != hubert.config.hidden_size:
            raise ValueError(
                f"Expected k-means centroids of shape (K, {hubert.config.hidden_size}) but got {centroids.shape}"
            )
        self.hubert = hubert
        self.layer = layer
        param = next(hubert.parameters())
        self.centroids = torch.from_numpy(centroids.astype(np.float32)).to(param.device)
        self.centroid_sq = (self.centroids**2).sum(1)

    @property
    def num_units(self) -> int:
        return int(self.centroids.shape[0])

    def features(self, audio: np.ndarray) -> Any:
        import torch

        param = next(self.hubert.parameters())
        wav = torch.from_numpy(np.asarray(audio, np.float32))[None].to(param.device, param.dtype)
        with torch.inference_mode():
            out = self.hubert(wav, output_hidden_states=True)
        return out.hidden_states[self.layer][0].float()  # (frames, hidden)

    def units(self, audio: np.ndarray, merge_repeats: bool = True) -> list[int]:
        feats = self.features(audio)
        distances = (feats**2).sum(1, keepdim=True) - 2 * feats @ self.centroids.T + self.centroid_sq
        ids = distances.argmin(1).tolist()
        if merge_repeats:
            ids = [u for i, u in enumerate(ids) if i == 0 or u != ids[i - 1]]
        return ids
