"""The codec: causal SEANet encoder -> residual VQ -> causal SEANet decoder, offline and streaming.

    codec = Codec(CodecConfig.preset("small"))
    codes = codec.encode(wav)            # [B, 1, T] float -> [B, n_q, ceil(T / 320)] int64
    wav = codec.decode(codes)            # [B, n_q, F] -> [B, 1, F * 320]
    stream = codec.streaming(batch_size=1)
    stream.encode_step(chunk)            # [B, 1, 320 * k] -> [B, n_q, k]
    stream.decode_step(codes)            # [B, n_q, k] -> [B, 1, 320 * k]

Streaming output equals offline output (tests/test_codec_streaming.py). Algorithmic latency is one frame (20 ms):
frame ``i`` depends on input samples up to ``(i + 1) * 320 - 1`` and decodes to output samples ``i*320 ...``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.utils._pytree import tree_flatten, tree_unflatten

from .config import CodecConfig
from .quantizer import ResidualVectorQuantizer
from .seanet import SEANetDecoder, SEANetEncoder
from .state import StreamState

WEIGHTS_NAME = "model.pt"
CONFIG_NAME = "config.json"


class Codec(nn.Module):
    """A streaming neural audio codec (EnCodec/Mimi family), ``sample_rate`` Hz mono in and out."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = SEANetEncoder(config)
        self.quantizer = ResidualVectorQuantizer(config)
        self.decoder = SEANetDecoder(config)
        self._layouts: dict[
            int, tuple
        ] = {}  # flat stream state per net: tree spec, tensor leaves, batch dims

    # -- the numbers users need ------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self.config.version

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def frame_size(self) -> int:
        """Samples per code frame (the hop)."""
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def n_q(self) -> int:
        return self.config.n_q

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def bitrate_bps(self, n_q: int | None = None) -> float:
        """Bits per second when sending the first ``n_q`` codebooks (all by default)."""
        return self.frame_rate * (n_q or self.n_q) * math.log2(self.codebook_size)

    # -- offline ---------------------------------------------------------------------------------------------
    def _check_wav(self, wav: Tensor) -> Tensor:
        if wav.dim() != 3 or wav.shape[1] != self.config.channels:
            raise ValueError(f"wav must be [B, {self.config.channels}, T], got shape {tuple(wav.shape)}")
        if not torch.is_floating_point(wav):
            raise ValueError(f"wav must be a float tensor, got {wav.dtype}")
        return wav

    def pad_to_frames(self, wav: Tensor) -> Tensor:
        """Right-pad with zeros to a whole number of frames."""
        extra = (-wav.shape[-1]) % self.frame_size
        return nn.functional.pad(wav, (0, extra)) if extra else wav

    def forward(self, wav: Tensor) -> dict[str, Tensor]:
        """Training pass: ``wav [B, 1, T]`` -> ``{"wav": reconstruction [B, 1, T'], "codes", "commit_loss"}``."""
        wav = self.pad_to_frames(self._check_wav(wav))
        z = self.encoder(wav)
        q, codes, commit = self.quantizer(z)
        return {"wav": self.decoder(q.to(z.dtype)), "codes": codes, "commit_loss": commit}

    @torch.no_grad()
    def encode(self, wav: Tensor) -> Tensor:
        """``[B, 1, T]`` float -> codes ``[B, n_q, ceil(T / frame_size)]`` int64 (the tail is zero-padded)."""
        wav = self.pad_to_frames(self._check_wav(wav))
        with parametrize.cached():
            return self.quantizer.encode(self.encoder(wav))

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, k, F]`` (the first k <= n_q codebooks) -> ``[B, 1, F * frame_size]``."""
        with parametrize.cached():
            return self.decoder(self.quantizer.decode(codes.long()))

    # -- streaming -------------------------------------------------------------------------------------------
    def streaming(self, batch_size: int = 1, snapshot: bool = True) -> CodecStream:
        """A new stream (all convolution states at zero) for encoding and decoding chunk by chunk.

        With ``snapshot`` (default) the stream runs on a copy of the current weights with weight norm folded in
        (faster per 20 ms frame; later training of this model does not reach the stream).
        """
        return CodecStream(self.inference_copy() if snapshot else self, batch_size)

    # -- streaming with explicit, batched state (the same calls as v2's) --------------------------------------
    def init_encoder_state(self, batch_size: int, device=None) -> StreamState:
        """The encoder state of ``batch_size`` fresh streams as flat named tensors (see ``codec/state.py``)."""
        return self._flat_state(self.encoder, batch_size, device)

    def init_decoder_state(self, batch_size: int, device=None) -> StreamState:
        """The decoder state of ``batch_size`` fresh streams as flat named tensors."""
        return self._flat_state(self.decoder, batch_size, device)

    @torch.no_grad()
    def encode_frames(self, wav: Tensor, state: StreamState) -> tuple[Tensor, StreamState]:
        """``[B, 1, k * frame_size]`` -> (codes ``[B, n_q, k]``, the new state); ``state`` is not modified."""
        self._check_wav(wav)
        if wav.shape[-1] % self.frame_size:
            raise ValueError(
                f"encode_frames needs whole frames of {self.frame_size} samples, got {wav.shape[-1]}"
            )
        if wav.shape[0] != state.batch_size:
            raise ValueError(f"wav batch {wav.shape[0]} != state batch size {state.batch_size}")
        with parametrize.cached():
            z, nested = self.encoder.step(wav, self._nested(self.encoder, state))
        return self.quantizer.encode(z), self._flatten(self.encoder, nested)

    @torch.no_grad()
    def decode_frames(self, codes: Tensor, state: StreamState) -> tuple[Tensor, StreamState]:
        """Codes ``[B, k_q, k]`` -> (``[B, 1, k * frame_size]``, the new state); ``state`` is not modified."""
        if codes.shape[0] != state.batch_size:
            raise ValueError(f"codes batch {codes.shape[0]} != state batch size {state.batch_size}")
        with parametrize.cached():
            wav, nested = self.decoder.step(
                self.quantizer.decode(codes.long()), self._nested(self.decoder, state)
            )
        return wav, self._flatten(self.decoder, nested)

    def _flat_state(self, net: nn.Module, batch_size: int, device) -> StreamState:
        device = device or next(self.parameters()).device
        return self._flatten(net, net.init_state(batch_size, device))

    def _flatten(self, net: nn.Module, nested: Any) -> StreamState:
        """The nested state of the SEANet modules as named tensors ``"0", "1", ...`` (stateless modules left out)."""
        leaves, spec = tree_flatten(nested)
        layout = self._layouts.get(id(net))
        if layout is None:  # each tensor's batch dimension: where the states of batch 1 and 2 differ in size
            one, _ = tree_flatten(net.init_state(1, torch.device("cpu")))
            two, _ = tree_flatten(net.init_state(2, torch.device("cpu")))
            where = [i for i, leaf in enumerate(one) if isinstance(leaf, Tensor)]
            dims = [next(d for d in range(one[i].dim()) if one[i].shape[d] != two[i].shape[d]) for i in where]
            layout = self._layouts[id(net)] = (spec, where, dims, len(one))
        _, where, dims, _ = layout
        names = [str(i) for i in range(len(where))]
        tensors = dict(zip(names, (leaves[i] for i in where), strict=True))
        return StreamState(tensors, dict(zip(names, dims, strict=True)))

    def _nested(self, net: nn.Module, state: StreamState) -> Any:
        if id(net) not in self._layouts:
            self._flatten(net, net.init_state(1, torch.device("cpu")))
        spec, where, _, n_leaves = self._layouts[id(net)]
        leaves: list[Any] = [None] * n_leaves
        for j, i in enumerate(where):
            leaves[i] = state.tensors[str(j)]
        return tree_unflatten(leaves, spec)

    def inference_copy(self) -> Codec:
        """A new codec in eval mode with the same weights and weight normalisation folded into plain weights."""
        copy = Codec(self.config)
        copy.load_state_dict(self.state_dict())
        for module in copy.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        device = next(self.parameters()).device
        return copy.to(device).eval().requires_grad_(False)

    # -- persistence -----------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write ``config.json`` and ``model.pt`` (the state dict) to ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.save(directory / CONFIG_NAME)
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        torch.save({"state_dict": state, "extra": extra or {}}, directory / WEIGHTS_NAME)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> Codec:
        """Load a codec written by :meth:`save_pretrained`; returned in eval mode.

        A folder of another codec version (``"version"`` in its ``config.json``) is loaded by that version's class,
        so ``Codec.from_pretrained`` opens every codec this package has written (see :func:`load_codec`).
        """
        directory = Path(directory)
        version = config_version(directory)
        if version != 1:
            from . import load_codec

            return load_codec(directory, map_location)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (directory / name).exists():
                raise FileNotFoundError(
                    f"{directory / name} not found: is {directory} a codec saved by save_pretrained?"
                )
        try:
            config = CodecConfig.load(directory / CONFIG_NAME)
        except (json.JSONDecodeError, ValueError, TypeError) as exc:
            raise ValueError(f"{directory / CONFIG_NAME}: not a valid codec config ({exc})") from None
        model = cls(config)
        payload = torch.load(directory / WEIGHTS_NAME, map_location=map_location, weights_only=True)
        model.load_state_dict(payload["state_dict"])
        return model.to(map_location).eval()


def config_version(directory: str | Path) -> int | None:
    """The ``version`` in ``directory/config.json`` (1 when absent: v1 folders from before versions), None if no
    readable config."""
    path = Path(directory) / CONFIG_NAME
    try:
        return int(json.loads(path.read_text(encoding="utf-8")).get("version", 1))
    except (OSError, json.JSONDecodeError, TypeError, ValueError, AttributeError):
        return None


class CodecStream:
    """All streaming state of one encode and one decode stream (batch of ``batch_size``)."""

    def __init__(self, codec: Codec, batch_size: int = 1) -> None:
        self.codec = codec
        self.batch_size = batch_size
        self.reset()

    def reset(self) -> None:
        """Forget the past: back to the state of a fresh stream."""
        device = next(self.codec.parameters()).device
        self.encoder_state = self.codec.encoder.init_state(self.batch_size, device)
        self.decoder_state = self.codec.decoder.init_state(self.batch_size, device)

    @torch.no_grad()
    def encode_step(self, wav_chunk: Tensor) -> Tensor:
        """``[B, 1, n]`` samples -> codes ``[B, n_q, k]`` for the ``k`` frames completed by this chunk.

        With ``n = frame_size * k`` every call returns exactly ``k`` frames; other sizes are buffered.
        """
        self.codec._check_wav(wav_chunk)
        if wav_chunk.shape[0] != self.batch_size:
            raise ValueError(f"chunk batch {wav_chunk.shape[0]} != stream batch_size {self.batch_size}")
        with parametrize.cached():  # weight norm: compute each weight once per call, not once per use
            z, self.encoder_state = self.codec.encoder.step(wav_chunk, self.encoder_state)
        if z.shape[-1] == 0:
            return torch.zeros(self.batch_size, self.codec.n_q, 0, dtype=torch.long, device=wav_chunk.device)
        return self.codec.quantizer.encode(z)

    @torch.no_grad()
    def decode_step(self, codes: Tensor) -> Tensor:
        """Codes ``[B, k_q, k]`` -> ``[B, 1, k * frame_size]`` samples."""
        if codes.shape[0] != self.batch_size:
            raise ValueError(f"codes batch {codes.shape[0]} != stream batch_size {self.batch_size}")
        if codes.shape[-1] == 0:
            return torch.zeros(self.batch_size, self.codec.config.channels, 0, device=codes.device)
        q = self.codec.quantizer.decode(codes.long())
        with parametrize.cached():
            wav, self.decoder_state = self.codec.decoder.step(q, self.decoder_state)
        return wav
