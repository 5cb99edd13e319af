"""Codec v2: causal STFT in, factorised RVQ (8 x 1024, 4 kbps), inverse STFT out; 16 kHz, 20 ms frames."""

from .config import V2_PRESETS, CodecV2Config
from .model import CodecV2, CodecV2Stream

__all__ = ["V2_PRESETS", "CodecV2", "CodecV2Config", "CodecV2Stream"]
