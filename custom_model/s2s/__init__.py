"""Streaming speech-to-speech model (Moshi-style RQ-Transformer over codec tokens)."""

from .generate import Sampling, StreamingGenerator, TurnTracker, generate_offline
from .kv_cache import RingKVCache
from .model import PRESETS, S2SConfig, S2SModel, config_preset, delay_codes, undelay_codes

__all__ = [
    "PRESETS",
    "RingKVCache",
    "S2SConfig",
    "S2SModel",
    "Sampling",
    "StreamingGenerator",
    "TurnTracker",
    "config_preset",
    "delay_codes",
    "generate_offline",
    "undelay_codes",
]
