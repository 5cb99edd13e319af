"""The built-in synthetic Telugu sets: ``telugu-mini``, ``telugu-mini-qa``, ``telugu-mini-cs``, ``telugu-synth``.

Synthetic speech is for pipelines, latency and regressions; it says nothing about accuracy on real speakers.
Each factory builds its set into the cache on first use (``s2s-bench data build NAME`` does the same ahead of time)
and returns the manifest's utterances.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from . import espeak, festival, text
from .build import Job, Part, dataset_dir, ensure_built, split_of, stable_seed
from .speakers import Speaker, default_speakers, espeak_speaker

RECIPE_VERSION = 1


def _engine_versions(speakers: list[Speaker]) -> dict[str, str]:
    out = {}
    try:
        out["espeakng-loader"] = version("espeakng-loader")
    except PackageNotFoundError:
        out["espeakng-loader"] = "missing"
    if any(s.engine == "festival" for s in speakers):
        out["festival-voice"] = str(festival.VOICE_DIR)
    return out


def _speaker_names(speakers: list[Speaker]) -> list[str]:
    return [f"{s.name}:{s.source}" for s in speakers]


def reference_voices(name: str) -> list[str] | None:
    """The voices a complete build of set ``name`` holds (what every machine must have to measure the same
    utterances): 4 espeak-ng voices plus festival's, espeak-ng only for the code-switched set (festival cannot speak
    Latin letters), festival for ``telugu-synth`` (whose espeak-ng voices are random draws). ``None``: unknown."""
    if name in ("telugu-mini", "telugu-mini-qa"):
        return [s.name for s in default_speakers(4, with_festival=True)]
    if name == "telugu-mini-cs":
        return [s.name for s in default_speakers(4, with_festival=False)]
    if name == "telugu-synth":
        return [festival.SPEAKER]
    return None


def _why_missing(with_festival: bool | None) -> dict[str, str]:
    """Why festival's voice is not in a build: left out on purpose, or not usable on this machine."""
    if with_festival is False:
        return {festival.SPEAKER: "left out on purpose (--no-festival)"}
    ok, detail = festival.festival_available()
    return {} if ok else {festival.SPEAKER: detail}


# ---------------------------------------------------------------- telugu-mini


def mini_jobs(sentences: list[str], speakers: list[Speaker]) -> list[Job]:
    """Every sentence by every speaker; a sentence's split is the same for all its speakers."""
    topics = text.sentence_topics()
    jobs = []
    for i, sent in enumerate(sentences):
        split = split_of(sent)
        for spk in speakers:
            uid = f"tm-{i:03d}-{spk.name}"
            part = Part(spk, sent, stable_seed("telugu-mini", i, spk.name), f"audio/{split}/{uid}.wav")
            jobs.append(Job(uid, split, part, extra={"topic": topics.get(sent, "")}))
    return jobs


def build_telugu_mini(
    cache: str | Path | None = None,
    *,
    n_espeak: int = 4,
    with_festival: bool | None = None,
    limit_sentences: int | None = None,
    workers: int = 2,
    progress: bool = True,
    force: bool = False,
    name: str = "telugu-mini",
) -> Path:
    """Build (if missing or stale) and return the manifest path of ``telugu-mini``."""
    speakers = default_speakers(n_espeak, with_festival)
    sentences = list(text.sentences())[:limit_sentences]
    recipe = _recipe(name, speakers, limit_sentences=limit_sentences)
    jobs = mini_jobs(sentences, speakers)
    return _ensure(
        name, cache, recipe, jobs, force=force, workers=workers, progress=progress,
        reference_voices=reference_voices("telugu-mini"), why_missing=_why_missing(with_festival),
    )  # fmt: skip


# ---------------------------------------------------------------- telugu-mini-qa


def qa_jobs(pairs: list[tuple[str, str]], speakers: list[Speaker], renderings: int = 2) -> list[Job]:
    """Each pair spoken ``renderings`` times: questions by different speakers, each answer by another speaker."""
    n = len(speakers)
    jobs = []
    for j, (question, answer) in enumerate(pairs):
        split = split_of(question)
        for r in range(min(renderings, n)):
            q_spk, a_spk = speakers[(j + r) % n], speakers[(j + r + 1) % n]
            uid = f"tq-{j:03d}-{r}"
            q = Part(q_spk, question, stable_seed("qa-q", j, r), f"audio/{split}/{uid}-q.wav")
            a = Part(a_spk, answer, stable_seed("qa-a", j, r), f"audio/{split}/{uid}-a.wav")
            jobs.append(Job(uid, split, q, response=a, extra={"pair": j}))
    return jobs


def build_telugu_mini_qa(
    cache: str | Path | None = None,
    *,
    n_espeak: int = 4,
    with_festival: bool | None = None,
    limit_pairs: int | None = None,
    renderings: int = 2,
    workers: int = 2,
    progress: bool = True,
    force: bool = False,
    name: str = "telugu-mini-qa",
) -> Path:
    speakers = default_speakers(n_espeak, with_festival)
    pairs = list(text.qa_pairs())[:limit_pairs]
    recipe = _recipe(name, speakers, limit_pairs=limit_pairs, renderings=renderings)
    jobs = qa_jobs(pairs, speakers, renderings)
    return _ensure(
        name, cache, recipe, jobs, force=force, workers=workers, progress=progress,
        reference_voices=reference_voices("telugu-mini-qa"), why_missing=_why_missing(with_festival),
    )  # fmt: skip


# ---------------------------------------------------------------- telugu-mini-cs (code-switched)


def build_telugu_mini_cs(
    cache: str | Path | None = None,
    *,
    n_espeak: int = 4,
    workers: int = 2,
    progress: bool = True,
    force: bool = False,
    name: str = "telugu-mini-cs",
) -> Path:
    """Code-switched Telugu-English sentences, espeak-ng voices only (festival cannot speak Latin letters)."""
    speakers = default_speakers(n_espeak, with_festival=False)
    recipe = _recipe(name, speakers)
    jobs = []
    for i, sent in enumerate(text.code_switched()):
        for spk in speakers:
            uid = f"tc-{i:03d}-{spk.name}"
            part = Part(spk, sent, stable_seed("telugu-mini-cs", i, spk.name), f"audio/test/{uid}.wav")
            jobs.append(Job(uid, "test", part, extra={"code_switched": True}))
    return _ensure(
        name, cache, recipe, jobs, force=force, workers=workers, progress=progress,
        reference_voices=reference_voices("telugu-mini-cs"),
    )  # fmt: skip


# ---------------------------------------------------------------- telugu-synth (codec training speech)

SYNTH_VARIANTS = tuple(f"te+m{i}" for i in range(1, 8)) + tuple(f"te+f{i}" for i in range(1, 6)) + ("te",)


def synth_jobs(seed: int = 0, festival_every: int = 0, batch: int = 128) -> Iterator[list[Job]]:
    """An endless, deterministic stream of training utterances in batches.

    Every fourth utterance is one of the project's train-split sentences or answers (never a dev/test text of
    ``telugu-mini`` or ``telugu-mini-qa``); the rest are 4-13 word sequences drawn from hunspell-te's word list
    (the project's own words when hunspell-te is not installed). Voices are espeak-ng variants with random
    rate (130-200 wpm), pitch (25-80) and range (20-80); with ``festival_every`` > 0 every n-th is festival's.
    """
    rng = np.random.default_rng(seed)
    train_texts = [s for s in text.sentences() if split_of(s) == "train"]
    train_texts += [t for q, a in text.qa_pairs() if split_of(q) == "train" for t in (q, a)]
    words = text.hunspell_words() or text.sentence_words()
    i = 0
    while True:
        jobs = []
        for _ in range(batch):
            if i % 4 == 0:
                utt_text, kind = train_texts[(i // 4) % len(train_texts)], "sentence"
            else:
                picks = [words[k] for k in rng.integers(0, len(words), size=int(rng.integers(4, 14)))]
                if len(picks) > 6 and rng.random() < 0.5:
                    picks[len(picks) // 2] += ","
                utt_text, kind = " ".join(picks) + ("?" if rng.random() < 0.15 else "."), "words"
            variant = SYNTH_VARIANTS[int(rng.integers(0, len(SYNTH_VARIANTS)))]
            rate, pitch, prange = (
                int(v) for v in (rng.integers(130, 201), rng.integers(25, 81), rng.integers(20, 81))
            )
            if festival_every and i % festival_every == festival_every - 1:
                spk = Speaker(festival.SPEAKER, "festival")
            else:
                voice = espeak.EspeakVoice(
                    f"espeak-{variant.replace('+', '-')}", variant, rate, pitch, prange
                )
                spk = espeak_speaker(voice)
            uid = f"ts-{i:06d}"
            part = Part(
                spk, utt_text, stable_seed("telugu-synth", seed, i), f"audio/{i // 1000:03d}/{uid}.wav"
            )
            jobs.append(Job(uid, "dev" if i % 50 == 49 else "train", part, extra={"kind": kind}))
            i += 1
        yield jobs


def build_telugu_synth(
    cache: str | Path | None = None,
    *,
    hours: float = 2.0,
    seed: int = 0,
    with_festival: bool | None = None,
    workers: int = 2,
    progress: bool = True,
    force: bool = False,
    name: str = "telugu-synth",
) -> Path:
    """Build ``hours`` of training speech (default 2 h); returns the manifest path."""
    if hours <= 0:
        raise ValueError(f"hours must be positive, got {hours}")
    why_missing = _why_missing(with_festival)
    if with_festival is None:
        with_festival = festival.festival_available()[0]
    festival_every = 8 if with_festival else 0
    speakers = default_speakers(1, with_festival)
    recipe = _recipe(
        name,
        speakers,
        hours=hours,
        seed=seed,
        festival_every=festival_every,
        hunspell=len(text.hunspell_words()),
    )
    return ensure_built(
        name, dataset_dir(name, cache), recipe, lambda: synth_jobs(seed, festival_every), force=force,
        workers=workers, progress=progress, target_hours=hours,
        reference_voices=reference_voices("telugu-synth"), why_missing=why_missing,
    )  # fmt: skip


def _ensure(
    name: str, cache: str | Path | None, recipe: dict[str, Any], jobs: list[Job], **options: Any
) -> Path:
    total = sum(len(j.parts()) for j in jobs)
    return ensure_built(
        name, dataset_dir(name, cache), recipe, lambda: iter([jobs]), total_parts=total, **options
    )


def _recipe(name: str, speakers: list[Speaker], **params: Any) -> dict[str, Any]:
    return {
        "name": name,
        "version": RECIPE_VERSION,
        "text": text.text_fingerprint(),
        "speakers": _speaker_names(speakers),
        "engines": _engine_versions(speakers),
        **params,
    }


BUILDERS = {
    "telugu-mini": build_telugu_mini,
    "telugu-mini-qa": build_telugu_mini_qa,
    "telugu-mini-cs": build_telugu_mini_cs,
    "telugu-synth": build_telugu_synth,
}
