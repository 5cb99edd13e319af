"""Batched real-time serving of the custom S2S model: one engine steps every live session per 20 ms tick.

- :mod:`.codec_api`: the batched streaming interface the engine expects from a codec (:class:`FrameCodec`) and
  its implementation for today's SEANet codec;
- :mod:`.fused_step`: a tick as two static-shape graphs (codec encode + S2S step; codec decode);
- :mod:`.slots`: the preallocated per-slot state and one tick's host work;
- :mod:`.variants`: eager, TorchScript, ``torch.compile``, ONNX Runtime, INT8, bf16/fp16 (``optimize=``);
- :mod:`.select`: parity checks and ``optimize=auto``;
- :mod:`.engine`: the engine thread, sessions joining and leaving at any tick;
- :mod:`.process`: the engine in worker processes, each with its own GIL and batch (``custom:workers=N``).
"""

from .codec_api import FrameCodec, SeanetFrameCodec, V2FrameCodec, check_frame_codec, frame_codec
from .engine import Engine, EngineSession, TurnPolicy

__all__ = [
    "Engine",
    "EngineSession",
    "FrameCodec",
    "SeanetFrameCodec",
    "V2FrameCodec",
    "TurnPolicy",
    "check_frame_codec",
    "frame_codec",
]
