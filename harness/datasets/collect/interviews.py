"""Synthetic "interviews" with planted turns: test material for the collection pipeline, made here, never downloaded.

An interview is question -> answer turns of ``telugu-mini-qa``'s texts spoken by two espeak-ng voices (the
interviewer asks, the guest answers; some answers run on with a second sentence after a short pause), separated by
pauses, over background noise at a chosen SNR and a quiet music bed, optionally after a music-only intro. It is
encoded to a media file (mp4/AAC, mp3, webm/Opus, wav) at the container's usual rate and in stereo, so decoding,
resampling and downmixing are exercised too. The truth (every utterance's first and last audible sample, every turn,
every pair of consecutive turns of different speakers within the pairing gap) is written beside it as JSON.

Synthetic speech says nothing about accuracy on real speakers: this is for checking the pipeline's mechanics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
ONSET_DBFS = -40.0
"""An utterance's planted start/end are its first/last sample audible at this level (10 ms RMS window)."""


@dataclass(frozen=True)
class InterviewStyle:
    """How an interview is laid out; times in seconds, levels in dB."""

    qa_gap_s: tuple[float, float] = (0.35, 1.0)
    next_question_gap_s: tuple[float, float] = (0.6, 3.2)
    run_on_prob: float = 0.3
    run_on_pause_s: tuple[float, float] = (0.35, 0.7)
    snr_db: float = 25.0
    music_db: float = -32.0
    intro_music_s: float = 0.0
    lead_s: float = 0.6
    tail_s: float = 0.8


def _audible_span(x: np.ndarray) -> tuple[int, int]:
    from ...audio import first_audible_sample

    a = first_audible_sample(x, SAMPLE_RATE, ONSET_DBFS)
    b = first_audible_sample(x[::-1], SAMPLE_RATE, ONSET_DBFS)
    if a is None or b is None:
        raise ValueError("synthesised utterance is silent")
    return a, x.size - b


def _pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.arange(spec.size), 1)
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return (x / (np.std(x) + 1e-12)).astype(np.float32)


def _music(n: int, rng: np.random.Generator) -> np.ndarray:
    """A slow chord progression of soft harmonic tones (unit RMS): music-like, not speech-like."""
    out = np.zeros(n, np.float32)
    chord_len = int(1.5 * SAMPLE_RATE)
    roots = [220.0, 174.6, 196.0, 146.8]
    t = np.arange(chord_len) / SAMPLE_RATE
    env = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.08)
    for k, start in enumerate(range(0, n, chord_len)):
        root = roots[(k + int(rng.integers(0, 4))) % 4]
        tone = sum(
            np.sin(2 * np.pi * root * r * h * t + rng.uniform(0, 6.28)) / h
            for r in (1.0, 1.26, 1.5)
            for h in (1, 2, 3)
        )
        seg = (env * tone)[: n - start]
        out[start : start + seg.size] += seg.astype(np.float32)
    return out / (np.std(out) + 1e-12)


def synthesize_turn_audio(voice, text: str, seed: int) -> np.ndarray:
    from .. import espeak

    x = espeak.synthesize(text, voice, seed=seed, sample_rate=SAMPLE_RATE)
    a, b = _audible_span(x)
    return x[a:b].astype(np.float32)


def make_interview(
    qa: list[tuple[str, str]],
    voices: tuple[Any, Any],
    seed: int,
    style: InterviewStyle | None = None,
    run_on_texts: list[str] | None = None,
    max_pair_gap_s: float = 2.0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Audio (16 kHz mono float32) of one interview and its truth: utterances, turns and pairs with times in s."""
    style = style or InterviewStyle()
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    utterances: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    pos = int((style.intro_music_s + style.lead_s) * SAMPLE_RATE)
    speech_mask_parts = []

    def place(x: np.ndarray, speaker: str, text: str) -> None:
        nonlocal pos
        parts.append((pos, x))
        utterances.append(
            {
                "speaker": speaker,
                "start_s": pos / SAMPLE_RATE,
                "end_s": (pos + x.size) / SAMPLE_RATE,
                "text": text,
            }
        )
        speech_mask_parts.append((pos, pos + x.size))
        pos += x.size

    def gap(lo_hi: tuple[float, float]) -> float:
        nonlocal pos
        g = float(rng.uniform(*lo_hi))
        pos += int(g * SAMPLE_RATE)
        return g

    run_ons = list(run_on_texts or [])
    for k, (question, answer) in enumerate(qa):
        if k:
            gap(style.next_question_gap_s)
        first = len(utterances)
        place(synthesize_turn_audio(voices[0], question, seed * 1000 + 2 * k), "interviewer", question)
        turns.append({"speaker": "interviewer", "utterances": [first]})
        gap(style.qa_gap_s)
        first = len(utterances)
        place(synthesize_turn_audio(voices[1], answer, seed * 1000 + 2 * k + 1), "guest", answer)
        if run_ons and rng.random() < style.run_on_prob:
            gap(style.run_on_pause_s)
            extra = run_ons.pop(0)
            place(synthesize_turn_audio(voices[1], extra, seed * 1000 + 500 + k), "guest", extra)
        turns.append({"speaker": "guest", "utterances": list(range(first, len(utterances)))})
    total = pos + int(style.tail_s * SAMPLE_RATE)
    speech = np.zeros(total, np.float32)
    for start, x in parts:
        speech[start : start + x.size] += x
    active = np.concatenate([speech[a:b] for a, b in speech_mask_parts])
    speech_rms = float(np.sqrt(np.mean(active.astype(np.float64) ** 2)))
    noise = _pink_noise(total, rng) * speech_rms * 10 ** (-style.snr_db / 20)
    music = _music(total, rng) * speech_rms * 10 ** (style.music_db / 20)
    intro = int(style.intro_music_s * SAMPLE_RATE)
    if intro:
        music[:intro] *= 10 ** ((-8.0 - style.music_db) / 20)  # the intro plays 8 dB under speech level
    audio = speech + noise + music
    audio *= 0.5 / max(1e-9, float(np.max(np.abs(audio))))
    for t in turns:
        us = [utterances[i] for i in t["utterances"]]
        t["start_s"], t["end_s"] = us[0]["start_s"], us[-1]["end_s"]
    pairs = []
    for i in range(len(turns) - 1):
        g = turns[i + 1]["start_s"] - turns[i]["end_s"]
        if turns[i]["speaker"] != turns[i + 1]["speaker"] and g <= max_pair_gap_s:
            pairs.append({"first": i, "second": i + 1, "gap_s": round(g, 4)})
    truth = {
        "sample_rate": SAMPLE_RATE,
        "duration_s": total / SAMPLE_RATE,
        "snr_db": style.snr_db,
        "music_db": style.music_db,
        "intro_music_s": style.intro_music_s,
        "voices": {"interviewer": voices[0].name, "guest": voices[1].name},
        "utterances": utterances,
        "turns": turns,
        "pairs": pairs,
        "max_pair_gap_s": max_pair_gap_s,
    }
    return audio.astype(np.float32), truth


CONTAINERS = {
    ".mp4": ("mp4", "aac", 48000),
    ".m4a": ("mp4", "aac", 44100),
    ".mp3": ("mp3", "libmp3lame", 44100),
    ".webm": ("webm", "libopus", 48000),
    ".opus": ("ogg", "libopus", 48000),
    ".mkv": ("matroska", "libopus", 48000),
}


def encode_media(path: str | Path, x: np.ndarray, sr: int = SAMPLE_RATE, bitrate: int = 96000) -> Path:
    """Write mono float32 ``x`` as a stereo media file (container and codec from the suffix); wav/flac via soundfile."""
    from ...audio import resample

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in (".wav", ".flac"):
        import soundfile as sf

        sf.write(str(path), x, sr, subtype="PCM_16")
        return path
    if suffix not in CONTAINERS:
        raise ValueError(
            f"Expected a suffix among {', '.join([*CONTAINERS, '.wav', '.flac'])} but got {suffix!r}"
        )
    import av

    fmt, codec, rate = CONTAINERS[suffix]
    y = resample(x, sr, rate)
    stereo = np.stack([y, 0.9 * y]).astype(np.float32)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout="stereo")
        stream.bit_rate = bitrate
        hop = 4096
        for i in range(0, stereo.shape[1], hop):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(stereo[:, i : i + hop]), format="fltp", layout="stereo"
            )
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_interview(path: str | Path, audio: np.ndarray, truth: dict[str, Any]) -> Path:
    """Encode ``audio`` to ``path`` and write the truth to ``path`` + ``.truth.json``."""
    path = encode_media(path, audio)
    Path(str(path) + ".truth.json").write_text(
        json.dumps(truth, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    return path


VOICE_PAIRS = tuple((m, f) if k % 2 == 0 else (f, m) for k, (m, f) in enumerate(
    (m, f) for m in (0, 2, 4) for f in (1, 3, 5)))  # fmt: skip
"""Interviewer and guest as indexes into ``espeak.ESPEAK_VOICES``: a male and a female variant, both orders. espeak-ng's
same-gender variants are too alike for a d-vector: te+m1 and te+m3 score a cosine of 0.81-0.83 with each other and
0.83-0.87 with themselves under resemblyzer, where different real speakers typically score 0.5-0.75."""


def interview_set(
    out_dir: str | Path,
    n_interviews: int,
    pairs_per_interview: int = 4,
    suffixes: tuple[str, ...] = (".mp4", ".mp3", ".webm"),
    style: InterviewStyle | None = None,
    seed: int = 0,
    style_of=None,
) -> list[Path]:
    """Write ``n_interviews`` interviews cycling through ``suffixes`` and voice pairs; every question -> answer pair
        of the project's text is used once before any is reused (so no two interviews share an utterance). ``style_of(i)``,
    when given, picks interview ``i``'s style."""
    from .. import espeak, text

    qa = list(text.qa_pairs())
    sentences = list(text.sentences())
    voices = espeak.ESPEAK_VOICES
    out = []
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(qa))
    for i in range(n_interviews):
        picks = [qa[order[(i * pairs_per_interview + k) % len(qa)]] for k in range(pairs_per_interview)]
        a, b = VOICE_PAIRS[i % len(VOICE_PAIRS)]
        a, b = voices[a], voices[b]
        run_ons = [sentences[(i * 7 + k) % len(sentences)] for k in range(pairs_per_interview)]
        st = style_of(i) if style_of else style
        audio, truth = make_interview(picks, (a, b), seed=seed * 100_003 + i, style=st, run_on_texts=run_ons)
        suffix = suffixes[i % len(suffixes)]
        out.append(write_interview(Path(out_dir) / f"interview-{i:03d}{suffix}", audio, truth))
    return out
