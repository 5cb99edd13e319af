"""Synthetic speakers: an engine (espeak-ng or festival) plus its settings, behind one ``synthesize_many`` call."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import espeak, festival

SAMPLE_RATE = 16000
ESPEAK_LICENSE = (
    "Apache-2.0 text by s2s-bench; audio synthesised with espeak-ng (GPL-3.0 engine, output unrestricted)"
)
FESTIVAL_LICENSE = (
    "Apache-2.0 text by s2s-bench; audio synthesised with festival + festvox-te-nsk (GPL-2.0+ voice)"
)


@dataclass(frozen=True)
class Speaker:
    """A named synthetic voice. ``engine`` is ``"espeak"`` or ``"festival"``."""

    name: str
    engine: str
    espeak_voice: espeak.EspeakVoice | None = None
    f0_mean: int = 115

    @property
    def license(self) -> str:
        return ESPEAK_LICENSE if self.engine == "espeak" else FESTIVAL_LICENSE

    @property
    def source(self) -> str:
        if self.engine == "espeak":
            v = self.espeak_voice
            return f"espeak-ng {v.voice} rate={v.rate} pitch={v.pitch} range={v.pitch_range}"
        return f"festival {festival.VOICE_FN} f0_mean={self.f0_mean}"


def espeak_speaker(voice: espeak.EspeakVoice) -> Speaker:
    return Speaker(voice.name, "espeak", espeak_voice=voice)


FESTIVAL_SPEAKER = Speaker(festival.SPEAKER, "festival")


def default_speakers(n_espeak: int = 4, with_festival: bool | None = None) -> list[Speaker]:
    """The built-in sets' speakers: ``n_espeak`` espeak-ng voices, plus festival's when it is installed."""
    if not 1 <= n_espeak <= len(espeak.ESPEAK_VOICES):
        raise ValueError(f"n_espeak must be 1..{len(espeak.ESPEAK_VOICES)}, got {n_espeak}")
    out = [espeak_speaker(v) for v in espeak.ESPEAK_VOICES[:n_espeak]]
    if with_festival is None:
        with_festival = festival.festival_available()[0]
    if with_festival:
        out.append(FESTIVAL_SPEAKER)
    return out


def synthesize_many(speaker: Speaker, items: list[tuple[str, int]]) -> list[np.ndarray | Exception]:
    """Speak ``(text, seed)`` items with one speaker; float32 mono 16 kHz arrays, or the error for that item."""
    if speaker.engine == "festival":
        return festival.synthesize_many(
            [t for t, _ in items], sample_rate=SAMPLE_RATE, f0_mean=speaker.f0_mean
        )
    out: list[np.ndarray | Exception] = []
    for text, seed in items:
        try:
            out.append(espeak.synthesize(text, speaker.espeak_voice, seed=seed, sample_rate=SAMPLE_RATE))
        except Exception as exc:  # noqa: BLE001 - one bad text must not stop a build
            out.append(exc)
    return out
