"""Our causal, streaming neural audio codecs for 16 kHz speech: 20 ms frames, up to 8 x 1024 codes (4 kbps).

- v1 (:class:`Codec`): EnCodec/Mimi-style SEANet convolutions at the sample rate + residual VQ.
- v2 (:class:`CodecV2`): causal STFT in, ConvNeXt blocks at 200 / 50 Hz, factorised RVQ, inverse STFT out.

Both offer the same calls (``encode``, ``decode``, ``streaming``, ``save_pretrained``); :func:`load_codec` opens a
saved folder of either version (its ``config.json`` records the version)::

    from custom_model.codec import load_codec
    codec = load_codec("custom_model/checkpoints/codec-small")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import PRESETS, CodecConfig
from .model import Codec, CodecStream, config_version
from .state import StreamState
from .v2 import V2_PRESETS, CodecV2, CodecV2Config, CodecV2Stream

__all__ = [
    "PRESETS",
    "V2_PRESETS",
    "Codec",
    "CodecConfig",
    "CodecStream",
    "CodecV2",
    "CodecV2Config",
    "CodecV2Stream",
    "StreamState",
    "codec_from_config",
    "load_codec",
    "preset_config",
]

CLASSES = {1: (Codec, CodecConfig), 2: (CodecV2, CodecV2Config)}


def load_codec(directory: str | Path, map_location: Any = "cpu") -> Codec | CodecV2:
    """Open a codec folder written by ``save_pretrained`` (any version), in eval mode."""
    directory = Path(directory)
    version = config_version(directory)
    if version is None:
        raise FileNotFoundError(
            f"{directory / 'config.json'} is missing or unreadable: is {directory} a saved codec folder?"
        )
    if version not in CLASSES:
        raise ValueError(
            f"{directory}: codec version {version} is unknown; this package knows {sorted(CLASSES)}"
        )
    return CLASSES[version][0].from_pretrained(directory, map_location)


def codec_from_config(config: dict[str, Any]) -> Codec | CodecV2:
    """A new (untrained) codec from a config dict of any version (``"version"`` absent means 1)."""
    version = int(config.get("version", 1))
    if version not in CLASSES:
        raise ValueError(f"codec version {version} is unknown; this package knows {sorted(CLASSES)}")
    cls, cfg_cls = CLASSES[version]
    return cls(cfg_cls.from_dict(config))


def preset_config(name: str, **overrides: Any) -> CodecConfig | CodecV2Config:
    """A codec preset by name: ``tiny``, ``small``, ``base`` (v1) or ``v2-tiny``, ``v2-small``, ``v2-base``."""
    if name.startswith("v2-"):
        return CodecV2Config.preset(name[3:], **overrides)
    return CodecConfig.preset(name, **overrides)
