"""``telugu-voices``: codec training speech in the built-in sets' own voices, with new text.

The built-in test sets (``telugu-mini``, ``telugu-mini-qa``) are spoken by five voices (four espeak-ng voices with
fixed settings, and festival's NSK when installed). ``telugu-synth`` varies voices and prosody at random, and
``telugu-mini``'s train split has only 262 sentences; this set gives a small codec hours of those five voices on
fresh text: word sequences drawn from hunspell-te's word list (the project's own words without it) and the
project's train-split sentences and answers. No dev/test text of ``telugu-mini`` / ``telugu-mini-qa`` is used on
purpose; a random word sequence could repeat a few test words, never a test sentence.

    python -m custom_model.codec.voice_data --hours 3      # builds into $S2S_BENCH_CACHE/data/telugu-voices
    python -m custom_model.train_codec --data telugu-mini,PATH/TO/telugu-voices/manifest.jsonl ...
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np

NAME = "telugu-voices"
RECIPE_VERSION = 1


def voice_jobs(seed: int = 0, batch: int = 128) -> Iterator[list]:
    """Endless deterministic batches of jobs: utterance ``i`` by speaker ``i % 5``; every fourth a project
    train-split text, the others 4-13 random words."""
    from harness.datasets import text
    from harness.datasets.build import Job, Part, split_of, stable_seed
    from harness.datasets.speakers import default_speakers

    speakers = default_speakers(4)
    rng = np.random.default_rng(seed)
    train_texts = [s for s in text.sentences() if split_of(s) == "train"]
    train_texts += [t for q, a in text.qa_pairs() if split_of(q) == "train" for t in (q, a)]
    words = text.hunspell_words() or text.sentence_words()
    i = 0
    while True:
        jobs = []
        for _ in range(batch):
            if i % 4 == 0:
                utt_text = train_texts[(i // 4) % len(train_texts)]
            else:
                picks = [words[k] for k in rng.integers(0, len(words), size=int(rng.integers(4, 14)))]
                utt_text = " ".join(picks) + ("?" if rng.random() < 0.15 else ".")
            spk = speakers[i % len(speakers)]
            uid = f"tv-{i:06d}"
            part = Part(spk, utt_text, stable_seed(NAME, seed, i), f"audio/{i // 1000:03d}/{uid}.wav")
            jobs.append(Job(uid, "train", part, extra={"voice": spk.name}))
            i += 1
        yield jobs


def build_telugu_voices(
    cache: str | Path | None = None,
    *,
    hours: float = 2.0,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Build (if missing or stale) ``hours`` of speech; returns the manifest path."""
    from harness.datasets import text
    from harness.datasets.build import dataset_dir, ensure_built
    from harness.datasets.speakers import default_speakers

    if hours <= 0:
        raise ValueError(f"hours must be positive, got {hours}")
    speakers = default_speakers(4)
    recipe = {
        "name": NAME,
        "version": RECIPE_VERSION,
        "text": text.text_fingerprint(),
        "speakers": [f"{s.name}:{s.source}" for s in speakers],
        "hours": hours,
        "seed": seed,
        "hunspell": len(text.hunspell_words()),
    }
    return ensure_built(
        NAME,
        dataset_dir(NAME, cache),
        recipe,
        lambda: voice_jobs(seed),
        workers=workers,
        progress=progress,
        target_hours=hours,
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m custom_model.codec.voice_data", description=__doc__.split("\n")[0]
    )
    p.add_argument("--hours", type=float, default=2.0)
    p.add_argument("--cache", default=None, help="cache folder (default: $S2S_BENCH_CACHE/data)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    print(build_telugu_voices(args.cache, hours=args.hours, workers=args.workers))


if __name__ == "__main__":
    main()
