"""Turn-taking scenarios built from any set of user questions, with every splice point known.

``--data turn-taking:DATA`` (DATA: any ``--data`` value: a built-in set, ``CORPUS:PATH``, a manifest) gives four
utterances per question of DATA, in this order, ids ``<question id>.<scenario>``:

- ``smooth``: the question as it is (Full-Duplex-Bench's smooth turn-taking): does the system take the turn after
  the real end, and how fast.
- ``pause``: the question with a pause of 0.4-1.5 s (uniform, seeded by the question's id, 10 ms steps) spliced
  in at its quietest 10 ms in the middle 40-60% of its audible part (digital silence; their pause handling): does
  the system take the turn during the pause.
- ``interrupt``: the question; ``INTERRUPT_AFTER_MS`` after the system's answer is first heard, the user starts a
  new question (the next question of DATA by the same speaker, else the next one) over it (their user
  interruption): how soon the system's audio stops, and whether it then answers the new question.
- ``backchannel``: the question; ``BACKCHANNEL_AFTER_MS`` after the answer is first heard, the user says a short
  Telugu acknowledgement (ఊ, అవును, సరే in turn) in another voice (espeak-ng ``te+f5``, or ``te+m7`` for a ``te+f5``
  question): whether the system wrongly stops (measured against the same question's ``smooth`` turn).

Injected speech (the new question, the acknowledgement) is trimmed to its audible part with 50 ms either side and
mixed into what the microphone hears at the time the runner decides from the output (:mod:`.driver`); the event
log records where. Everything is deterministic: the same DATA gives the same audio and ids on every machine (no
VAD is involved in building them), so a run on them can be rescored and its inputs re-derived.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..audio import first_audible_sample
from ..data import Utterance, validate_audio

SCENARIOS = ("smooth", "pause", "interrupt", "backchannel")
PAUSE_RANGE_S = (0.4, 1.5)
PAUSE_SEARCH = (0.4, 0.6)
"""The pause goes at the quietest 10 ms frame inside this fraction of the question's audible part."""
INTERRUPT_AFTER_MS = 500.0
BACKCHANNEL_AFTER_MS = 500.0
BACKCHANNELS = ("ఊ", "అవును", "సరే")
BACKCHANNEL_VOICES = ("espeak-te-f5", "espeak-te-m7")
CLIP_MARGIN_S = 0.05
RECIPE_VERSION = 1


@dataclass
class Injection:
    """User speech the driver mixes into the microphone while the system answers."""

    what: str
    """``interrupt`` or ``backchannel``."""
    after_output_ms: float
    """Starts this long after the system's answer is first heard."""
    audio: np.ndarray = field(repr=False)
    """Float32 mono at the backend's input rate."""
    speech_s: tuple[float, float]
    """The audible part of ``audio`` (seconds into it): where the user's speech starts and ends."""
    label: str
    """Which speech: the interrupting question's id, or the acknowledgement and its voice."""
    sample_rate: int = 16000

    def record(self) -> dict[str, Any]:
        """What the event log says about it (no audio)."""
        return {
            "what": self.what,
            "after_output_ms": self.after_output_ms,
            "speech_s": [round(self.speech_s[0], 6), round(self.speech_s[1], 6)],
            "duration_s": round(self.audio.size / self.sample_rate, 6),
            "label": self.label,
        }


def audible_bounds(x: np.ndarray, sr: int) -> tuple[int, int] | None:
    """``[first, last + 1)`` audible samples of ``x`` (harness.audio's audibility rule, from both ends)."""
    on = first_audible_sample(x, sr)
    if on is None:
        return None
    off = x.size - first_audible_sample(x[::-1], sr)
    return on, max(off, on + 1)


def trim_to_speech(x: np.ndarray, sr: int, where: str) -> tuple[np.ndarray, tuple[float, float]]:
    """``x`` cut to its audible part +- ``CLIP_MARGIN_S``, and that part's (start, end) in seconds in the cut."""
    bounds = audible_bounds(x, sr)
    if bounds is None:
        raise ValueError(f"{where}: nothing audible to inject (the clip is silent)")
    margin = int(round(CLIP_MARGIN_S * sr))
    lo, hi = max(0, bounds[0] - margin), min(x.size, bounds[1] + margin)
    return x[lo:hi].copy(), ((bounds[0] - lo) / sr, (bounds[1] - lo) / sr)


def pause_cut_s(x: np.ndarray, sr: int) -> float:
    """Where a pause goes into question ``x``: the start of its quietest 10 ms frame within ``PAUSE_SEARCH`` of its
    audible part (the earliest of equals), in seconds."""
    bounds = audible_bounds(x, sr)
    if bounds is None:
        return x.size / sr / 2
    frame = int(round(0.010 * sr))
    lo = bounds[0] + int(PAUSE_SEARCH[0] * (bounds[1] - bounds[0]))
    hi = bounds[0] + int(PAUSE_SEARCH[1] * (bounds[1] - bounds[0]))
    starts = np.arange(lo, max(lo + 1, hi - frame + 1), frame)
    energy = [float(np.mean(np.square(x[s : s + frame], dtype=np.float64))) for s in starts]
    return int(starts[int(np.argmin(energy))]) / sr


def pause_length_s(question_id: str) -> float:
    """The pause spliced into question ``question_id``: uniform in ``PAUSE_RANGE_S``, 10 ms steps, seeded by the id."""
    seed = int.from_bytes(hashlib.sha256(f"pause\x1f{question_id}".encode()).digest()[:8], "little")
    value = np.random.default_rng(seed).uniform(*PAUSE_RANGE_S)
    return round(float(value), 2)


_CLIPS: dict[tuple[str, str, int], np.ndarray] = {}
_CLIPS_LOCK = threading.Lock()


def backchannel_audio(text: str, voice_name: str, sr: int) -> np.ndarray:
    """The acknowledgement ``text`` spoken by espeak-ng voice ``voice_name`` (reproducible: seeded), at ``sr`` Hz."""
    from ..audio import resample
    from ..datasets import espeak

    key = (text, voice_name, sr)
    with _CLIPS_LOCK:
        if key not in _CLIPS:
            voice = next(v for v in espeak.ESPEAK_VOICES if v.name == voice_name)
            seed = int.from_bytes(
                hashlib.sha256(f"bc\x1f{text}\x1f{voice_name}".encode()).digest()[:4], "little"
            )
            x = espeak.synthesize(text, voice, seed=seed >> 1, sample_rate=16000)
            _CLIPS[key] = resample(x, 16000, sr)
        return _CLIPS[key]


@dataclass
class TurnUtterance(Utterance):
    """One scenario utterance: a question of the source set, maybe with a pause, maybe with injected speech."""

    scenario: str = "smooth"
    base: Utterance | None = field(default=None, repr=False)
    pause_len_s: float | None = None
    partner: Utterance | None = field(default=None, repr=False)
    backchannel: tuple[str, str] | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def load_audio(self, target_sr: int) -> np.ndarray:
        """The question (with the pause spliced in for ``pause``), float32 mono at ``target_sr``."""
        if target_sr in self._cache:
            return self._cache[target_sr][0]
        x = self.base.load_audio(target_sr)
        pause = None
        if self.scenario == "pause":
            cut = pause_cut_s(x, target_sr)
            at = int(round(cut * target_sr))
            gap = np.zeros(int(round(self.pause_len_s * target_sr)), np.float32)
            x = np.concatenate([x[:at], gap, x[at:]])
            pause = (at / target_sr, (at + gap.size) / target_sr)
            annotated = (self.base.extra or {}).get("speech_end_s")
            if annotated is not None:  # data that knows its speech end: it moves with the pause
                end = float(annotated)
                self.extra["speech_end_s"] = end + self.pause_len_s if end > pause[0] else end
        validate_audio(x, target_sr, f"<turn-taking:{self.id}>")
        self._cache[target_sr] = (x, pause)
        return x

    def turn_plan(self, target_sr: int) -> tuple[dict[str, Any], list[Injection]]:
        """(what utt_start records under ``turns``, the speech to inject), audio at ``target_sr``."""
        self.load_audio(target_sr)
        pause = self._cache[target_sr][1]
        plan: dict[str, Any] = {"scenario": self.scenario, "source": self.base.id}
        if pause is not None:
            plan["pause_s"] = [round(pause[0], 6), round(pause[1], 6)]
        injections = []
        if self.scenario == "interrupt":
            clip, span = trim_to_speech(self.partner.load_audio(target_sr), target_sr, self.partner.id)
            injections.append(
                Injection("interrupt", INTERRUPT_AFTER_MS, clip, span, self.partner.id, target_sr)
            )
        elif self.scenario == "backchannel":
            text, voice = self.backchannel
            raw = backchannel_audio(text, voice, target_sr)
            clip, span = trim_to_speech(raw, target_sr, f"backchannel {text!r} ({voice})")
            injections.append(
                Injection("backchannel", BACKCHANNEL_AFTER_MS, clip, span, f"{text} ({voice})", target_sr)
            )
        plan["inject"] = [inj.record() for inj in injections]
        return plan, injections


def _identity(*parts: object) -> str:
    return hashlib.sha256(json.dumps([RECIPE_VERSION, *map(str, parts)]).encode()).hexdigest()


def _partner(utts: list[Utterance], k: int) -> Utterance | None:
    """The question the user interrupts question ``k`` with: the next one by the same speaker with another text,
    else the next one with another text (wrapping around)."""
    n = len(utts)
    order = [utts[(k + i) % n] for i in range(1, n)]
    other = [u for u in order if u.text is None or u.text != utts[k].text]
    same = [u for u in other if utts[k].speaker and u.speaker == utts[k].speaker]
    return (same or other or [None])[0]


def build_scenarios(base: Iterable[Utterance], scenarios: Iterable[str] = SCENARIOS) -> list[TurnUtterance]:
    """The scenario utterances of ``base`` (module docstring), grouped by question. No audio is read here."""
    wanted = list(scenarios)
    unknown = [s for s in wanted if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"Expected scenarios among {', '.join(SCENARIOS)} but got {', '.join(unknown)}")
    utts = list(base)
    out: list[TurnUtterance] = []
    for k, u in enumerate(utts):
        partner = _partner(utts, k) if len(utts) > 1 else None
        voice = BACKCHANNEL_VOICES[1] if u.speaker == BACKCHANNEL_VOICES[0] else BACKCHANNEL_VOICES[0]
        text = BACKCHANNELS[k % len(BACKCHANNELS)]
        for scenario in SCENARIOS:
            if scenario not in wanted or (scenario == "interrupt" and partner is None):
                continue
            common = dict(
                id=f"{u.id}.{scenario}",
                sample_rate=u.sample_rate,
                text=u.text,
                response_text=u.response_text,
                response_audio_path=u.response_audio_path,
                speaker=u.speaker,
                language=u.language,
                split=u.split,
                source=f"turn-taking {scenario} of {u.source or u.id}",
                license=u.license,
                extra={k2: v for k2, v in (u.extra or {}).items() if k2 != "speech_end_s"},
                scenario=scenario,
                base=u,
            )
            if "speech_end_s" in (u.extra or {}):
                common["extra"]["speech_end_s"] = u.extra["speech_end_s"]
            if scenario == "pause":
                length = pause_length_s(u.id)
                ident = _identity(scenario, u.sha256 or u.id, length)
                out.append(TurnUtterance(**common, sha256=ident, pause_len_s=length))
            elif scenario == "interrupt":
                ident = _identity(
                    scenario, u.sha256 or u.id, partner.sha256 or partner.id, INTERRUPT_AFTER_MS
                )
                out.append(TurnUtterance(**common, sha256=ident, partner=partner))
            elif scenario == "backchannel":
                ident = _identity(scenario, u.sha256 or u.id, text, voice, BACKCHANNEL_AFTER_MS)
                out.append(TurnUtterance(**common, sha256=ident, backchannel=(text, voice)))
            else:
                out.append(TurnUtterance(**common, sha256=_identity(scenario, u.sha256 or u.id)))
    return out


def turn_taking_set(path: str | None = None, **options: Any) -> list[TurnUtterance]:
    """The ``turn-taking`` data set: ``--data turn-taking:DATA`` builds every scenario from DATA's questions."""
    if not path:
        raise ValueError(
            "turn-taking needs the questions to build from: --data turn-taking:DATA (e.g. "
            "turn-taking:telugu-mini-qa, turn-taking:fleurs:/data/fleurs/te_in, turn-taking:manifest.jsonl)"
        )
    from ..data import load_utterances

    return build_scenarios(load_utterances(path, **options))
