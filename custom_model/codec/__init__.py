"""A causal, streaming neural audio codec for 16 kHz speech (EnCodec/Mimi family).

from custom_model.codec import Codec, CodecConfig
codec = Codec(CodecConfig.preset("small"))
"""

from .config import PRESETS, CodecConfig
from .model import Codec, CodecStream

__all__ = ["Codec", "CodecConfig", "CodecStream", "PRESETS"]
