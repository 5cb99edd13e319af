"""Codec v2: a frame-rate streaming codec with an inverse-STFT output, 16 kHz, 20 ms frames, 8 x 1024 codes.

    codec = CodecV2(CodecV2Config.preset("small"))
    codes = codec.encode(wav)                     # [B, 1, T] float -> [B, n_q, ceil(T / 320)] int64
    wav = codec.decode(codes)                     # [B, k, F] (first k codebooks) -> [B, 1, F * 320]
    enc, dec = codec.init_encoder_state(8), codec.init_decoder_state(8)   # explicit, batched state
    codes, enc = codec.encode_frames(chunk, enc)  # [8, 1, 320 * k] -> [8, n_q, k]
    audio, dec = codec.decode_frames(codes, dec)  # [8, k_q, k] -> [8, 1, 320 * k]
    stream = codec.streaming(batch_size=1)        # the same with the state kept for you (v1's interface)

Why this shape (see docs/codec.md): v1's SEANet runs convolutions at 16 kHz, so most of its compute and most of
its per-frame operations sit at the sample rate. Here the signal enters as a causal STFT (hop 80 samples, four
sub-frames per code frame), every network layer runs at 200 Hz or 50 Hz, and the output is an inverse STFT
(Vocos, WavTokenizer): far fewer FLOPs and operations per frame, so it trains faster on a CPU and streams cheaply.

Latency: frame ``i``'s codes depend on input samples up to ``(i + 1) * 320 - 1`` and decode to output samples
``i * 320 ...`` (the synthesis window of a sub-frame starts at its first sample, so nothing waits for the future):
20 ms algorithmic latency, as v1. Streaming output equals offline output (``tests/test_codec_v2.py``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..state import StreamState
from .blocks import CausalConvNeXt, CausalSTFT, ISTFTHead
from .config import CodecV2Config
from .quantizer import FactorizedRVQ

WEIGHTS_NAME = "model.pt"
CONFIG_NAME = "config.json"


class CodecV2(nn.Module):
    """Causal STFT -> ConvNeXt encoder -> factorised RVQ -> ConvNeXt decoder -> inverse STFT."""

    def __init__(self, config: CodecV2Config) -> None:
        super().__init__()
        self.config = c = config
        scale = 1.0 / max(1, c.enc_sub_layers + c.enc_layers)
        self.stft = CausalSTFT(c.analysis_n_fft, c.sub_hop, c.complex_power)
        self.enc_in = nn.Sequential(nn.Linear(self.stft.features, c.enc_sub_dim), nn.LayerNorm(c.enc_sub_dim))
        self.enc_sub = nn.ModuleList(
            CausalConvNeXt(c.enc_sub_dim, c.enc_sub_kernel, c.ffn_mult, scale)
            for _ in range(c.enc_sub_layers)
        )
        self.enc_merge = nn.Linear(c.sub_frames * c.enc_sub_dim, c.enc_dim)
        self.enc_blocks = nn.ModuleList(
            CausalConvNeXt(c.enc_dim, c.enc_kernel, c.ffn_mult, scale) for _ in range(c.enc_layers)
        )
        self.enc_out = nn.Sequential(nn.LayerNorm(c.enc_dim), nn.Linear(c.enc_dim, c.latent_dim))
        self.quantizer = FactorizedRVQ(
            c.latent_dim,
            c.n_q,
            c.codebook_size,
            c.codebook_dim,
            c.quantizer_dropout,
            c.commitment_weight,
            c.codebook_weight,
        )
        scale = 1.0 / max(1, c.dec_layers + c.dec_sub_layers)
        self.dec_in = nn.Linear(c.latent_dim, c.dec_dim)
        self.dec_blocks = nn.ModuleList(
            CausalConvNeXt(c.dec_dim, c.dec_kernel, c.ffn_mult, scale) for _ in range(c.dec_layers)
        )
        self.dec_split = nn.Sequential(
            nn.LayerNorm(c.dec_dim), nn.Linear(c.dec_dim, c.sub_frames * c.dec_sub_dim)
        )
        self.dec_sub = nn.ModuleList(
            CausalConvNeXt(c.dec_sub_dim, c.dec_sub_kernel, c.ffn_mult, scale)
            for _ in range(c.dec_sub_layers)
        )
        self.head_norm = nn.LayerNorm(c.dec_sub_dim)
        self.head = ISTFTHead(c.dec_sub_dim, c.synthesis_n_fft, c.sub_hop, c.max_log_magnitude)
        self.gradient_checkpointing = False  # training: recompute each block in the backward pass

    def _run(
        self, blocks: nn.ModuleList, name: str, x: Tensor, state: dict | None, new: dict[str, Tensor]
    ) -> Tensor:
        """Run ``blocks`` offline (``state`` None) or one streaming step (their states read from / written to
        ``state`` / ``new`` under ``name.i``)."""
        for i, block in enumerate(blocks):
            if state:
                x, new[f"{name}.{i}"] = block.step(x, state[f"{name}.{i}"])
            elif self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    # -- the numbers users need (the same names as v1) ---------------------------------------------------------
    @property
    def version(self) -> int:
        return self.config.version

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def frame_size(self) -> int:
        return self.config.frame_size

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
        return self.frame_rate * (n_q or self.n_q) * math.log2(self.codebook_size)

    # -- shared arithmetic of offline and streaming passes -------------------------------------------------------
    def _check_wav(self, wav: Tensor) -> Tensor:
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"wav must be [B, 1, T], got shape {tuple(wav.shape)}")
        if not torch.is_floating_point(wav):
            raise ValueError(f"wav must be a float tensor, got {wav.dtype}")
        return wav

    def pad_to_frames(self, wav: Tensor) -> Tensor:
        extra = (-wav.shape[-1]) % self.frame_size
        return nn.functional.pad(wav, (0, extra)) if extra else wav

    def _encode(self, wav: Tensor, state: dict[str, Tensor] | None) -> tuple[Tensor, dict[str, Tensor]]:
        """``[B, T]`` samples (whole frames) -> latents ``[B, T / frame_size, latent_dim]``; state in, state out."""
        new: dict[str, Tensor] = {}
        if state:
            x, new["stft"] = self.stft.step(wav, state["stft"])
        else:
            x = self.stft(wav)
        x = self.enc_in(x)
        x = self._run(self.enc_sub, "enc_sub", x, state, new)
        b, s, d = x.shape
        x = self.enc_merge(x.reshape(b, s // self.config.sub_frames, self.config.sub_frames * d))
        x = self._run(self.enc_blocks, "enc", x, state, new)
        return self.enc_out(x), new

    def _decode(self, q: Tensor, state: dict[str, Tensor] | None) -> tuple[Tensor, dict[str, Tensor]]:
        """Latents ``[B, F, latent_dim]`` -> samples ``[B, F * frame_size]``; state in, state out."""
        new: dict[str, Tensor] = {}
        x = self.dec_in(q)
        x = self._run(self.dec_blocks, "dec", x, state, new)
        b, f, _ = x.shape
        x = self.dec_split(x).reshape(b, f * self.config.sub_frames, self.config.dec_sub_dim)
        x = self._run(self.dec_sub, "dec_sub", x, state, new)
        x = self.head_norm(x)
        if state:
            wav, new["ola"] = self.head.step(x, state["ola"])
            return wav, new
        return self.head(x), new

    # -- offline -----------------------------------------------------------------------------------------------
    def encode_latents(self, wav: Tensor) -> Tensor:
        """``[B, 1, T]`` -> continuous latents ``[B, ceil(T / frame_size), latent_dim]`` (before quantisation)."""
        return self._encode(self.pad_to_frames(self._check_wav(wav))[:, 0], None)[0]

    def forward(self, wav: Tensor, n_q: int | Tensor | None = None) -> dict[str, Tensor]:
        """Training pass: ``wav [B, 1, T]`` -> ``{"wav" [B, 1, T'], "codes", "commit_loss", ...}``.

        ``commit_loss`` is the quantizer's weighted codebook + commitment loss. ``n_q``: codebooks kept, for every
        item (int) or per item (``[B]``); None: the quantizer draws its dropout itself.
        """
        z = self.encode_latents(wav)
        vq = self.quantizer(z, n_q=n_q)
        wav_out = self._decode(vq["q"], None)[0][:, None]
        return {
            "wav": wav_out,
            "codes": vq["codes"],
            "commit_loss": vq["loss"],
            "commitment": vq["commitment"],
        }

    @torch.no_grad()
    def encode(self, wav: Tensor) -> Tensor:
        """``[B, 1, T]`` float -> codes ``[B, n_q, ceil(T / frame_size)]`` int64 (the tail is zero-padded)."""
        return self.quantizer.encode(self.encode_latents(wav))

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, k, F]`` (the first k <= n_q codebooks) -> ``[B, 1, F * frame_size]``."""
        return self._decode(self.quantizer.decode(codes.long()), None)[0][:, None]

    # -- streaming with explicit state -------------------------------------------------------------------------
    def init_encoder_state(self, batch_size: int, device=None) -> StreamState:
        """The encoder state of ``batch_size`` fresh streams (all zeros)."""
        device = device or next(self.parameters()).device
        t = {"stft": self.stft.init_state(batch_size, device)}
        t.update({f"enc_sub.{i}": b.init_state(batch_size, device) for i, b in enumerate(self.enc_sub)})
        t.update({f"enc.{i}": b.init_state(batch_size, device) for i, b in enumerate(self.enc_blocks)})
        return StreamState(t)

    def init_decoder_state(self, batch_size: int, device=None) -> StreamState:
        """The decoder state of ``batch_size`` fresh streams (all zeros)."""
        device = device or next(self.parameters()).device
        t = {f"dec.{i}": b.init_state(batch_size, device) for i, b in enumerate(self.dec_blocks)}
        t.update({f"dec_sub.{i}": b.init_state(batch_size, device) for i, b in enumerate(self.dec_sub)})
        t["ola"] = self.head.init_state(batch_size, device)
        return StreamState(t)

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
        z, new = self._encode(wav[:, 0], state.tensors)
        return self.quantizer.encode(z), StreamState(new)

    @torch.no_grad()
    def decode_frames(self, codes: Tensor, state: StreamState) -> tuple[Tensor, StreamState]:
        """Codes ``[B, k_q, k]`` -> (``[B, 1, k * frame_size]``, the new state); ``state`` is not modified."""
        if codes.shape[0] != state.batch_size:
            raise ValueError(f"codes batch {codes.shape[0]} != state batch size {state.batch_size}")
        wav, new = self._decode(self.quantizer.decode(codes.long()), state.tensors)
        return wav[:, None], StreamState(new)

    def streaming(self, batch_size: int = 1) -> CodecV2Stream:
        """A stream that keeps its own state and buffers partial frames (v1's ``CodecStream`` interface)."""
        return CodecV2Stream(self.inference_copy(), batch_size)

    def inference_copy(self) -> CodecV2:
        """A copy in eval mode without gradients (later training of this model does not reach it)."""
        copy = CodecV2(self.config)
        copy.load_state_dict(self.state_dict())
        copy = copy.to(next(self.parameters()).device).eval().requires_grad_(False)
        copy.quantizer.freeze_tables_()
        for block in (*copy.enc_sub, *copy.enc_blocks, *copy.dec_blocks, *copy.dec_sub):
            block.freeze_()
        return copy

    # -- persistence -------------------------------------------------------------------------------------------
    def save_pretrained(
        self, directory: str | Path, extra: dict[str, Any] | None = None, dtype: torch.dtype | None = None
    ) -> Path:
        """Write ``config.json`` (with ``"version": 2``) and ``model.pt`` to ``directory``.

        ``dtype`` (e.g. ``torch.float16``) stores the floating-point tensors smaller; loading casts them back to the
        model's float32, and that loaded model is what every benchmark of a committed checkpoint measures.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.save(directory / CONFIG_NAME)
        state = {
            k: (
                v.detach().cpu().to(dtype)
                if dtype is not None and v.is_floating_point()
                else v.detach().cpu()
            )
            for k, v in self.state_dict().items()
        }
        torch.save({"state_dict": state, "extra": extra or {}}, directory / WEIGHTS_NAME)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> CodecV2:
        directory = Path(directory)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (directory / name).exists():
                raise FileNotFoundError(f"{directory / name} not found: is {directory} a saved codec folder?")
        try:
            config = CodecV2Config.from_dict(
                json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8"))
            )
        except (json.JSONDecodeError, ValueError, TypeError) as exc:
            raise ValueError(f"{directory / CONFIG_NAME}: not a valid codec v2 config ({exc})") from None
        model = cls(config)
        payload = torch.load(directory / WEIGHTS_NAME, map_location=map_location, weights_only=True)
        model.load_state_dict(payload["state_dict"])
        return model.to(map_location).eval()


class CodecV2Stream:
    """One encode and one decode stream of ``batch_size``, with partial frames buffered (as v1's ``CodecStream``)."""

    def __init__(self, codec: CodecV2, batch_size: int = 1) -> None:
        self.codec = codec
        self.batch_size = batch_size
        self.reset()

    def reset(self) -> None:
        """Forget the past: back to the state of a fresh stream."""
        self.encoder_state = self.codec.init_encoder_state(self.batch_size)
        self.decoder_state = self.codec.init_decoder_state(self.batch_size)
        self._pending = None

    @torch.no_grad()
    def encode_step(self, wav_chunk: Tensor) -> Tensor:
        """``[B, 1, n]`` samples -> codes ``[B, n_q, k]`` for the ``k`` frames this chunk completes."""
        self.codec._check_wav(wav_chunk)
        if wav_chunk.shape[0] != self.batch_size:
            raise ValueError(f"chunk batch {wav_chunk.shape[0]} != stream batch_size {self.batch_size}")
        if self._pending is not None:
            wav_chunk = torch.cat([self._pending, wav_chunk], dim=-1)
        whole = wav_chunk.shape[-1] - wav_chunk.shape[-1] % self.codec.frame_size
        self._pending = wav_chunk[..., whole:] if whole < wav_chunk.shape[-1] else None
        if whole == 0:
            return torch.zeros(self.batch_size, self.codec.n_q, 0, dtype=torch.long, device=wav_chunk.device)
        codes, self.encoder_state = self.codec.encode_frames(wav_chunk[..., :whole], self.encoder_state)
        return codes

    @torch.no_grad()
    def decode_step(self, codes: Tensor) -> Tensor:
        """Codes ``[B, k_q, k]`` -> ``[B, 1, k * frame_size]`` samples."""
        if codes.shape[0] != self.batch_size:
            raise ValueError(f"codes batch {codes.shape[0]} != stream batch_size {self.batch_size}")
        if codes.shape[-1] == 0:
            return torch.zeros(self.batch_size, 1, 0, device=codes.device)
        wav, self.decoder_state = self.codec.decode_frames(codes, self.decoder_state)
        return wav
