"""Does the answer fit the question? Rank-1 accuracy of generated answers against the reference answers.

For each question the model answers (greedy, streaming, as the backend runs it). The generated answer and every
candidate reference answer of the same split are decoded by the codec and compared as log-mel sequences with a
slope-constrained DTW (steps (1,1), (1,2), (2,1); length ratios beyond 2 count as no match). Each log-mel sequence
is first normalised to zero mean and unit variance per band (per-utterance CMVN), so that what is compared is what
is said more than the voice saying it. The answer is a hit when the nearest candidate says the same text as the
question's own reference answer (the same answer spoken by other voices counts as right). Chance level is reported
beside it, and ``--oracle`` measures the metric itself: each reference answer as the "generated" one, against the
others (the same answer by another voice must be the nearest; without CMVN this found it 17 % of the time with
codec v2, with CMVN about half the time, see docs/s2s.md).

Train and test pairs are scored separately: on train questions the model can have memorised the answer; test
questions (telugu-mini-qa splits by question) were never heard, so their answers cannot be known and test accuracy
near chance is the honest expectation for a model of this size trained on this little data.

    python -m custom_model.s2s.content --s2s custom_model/checkpoints/s2s-small --pairs telugu-mini-qa
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from .generate import Sampling, StreamingGenerator, TurnTracker, codec_frame
from .model import S2SModel


def log_mel(
    wav: np.ndarray, sr: int = 16000, n_fft: int = 512, hop: int = 320, n_mels: int = 40
) -> np.ndarray:
    """Log-mel frames ``[frames, n_mels]`` (Hann window, Slaney-style triangular filters, log(1e-5 + energy))."""
    wav = np.asarray(wav, np.float64)
    if wav.size < n_fft:
        wav = np.pad(wav, (0, n_fft - wav.size))
    frames = 1 + (wav.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(wav[idx] * np.hanning(n_fft), axis=1)) ** 2
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = hz(np.linspace(mel(50), mel(sr / 2), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1 / sr)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0, np.minimum((bins - lower) / (centre - lower), (upper - bins) / (upper - centre)))
    return np.log(1e-5 + spec @ fb.T).astype(np.float32)


def cmvn(mel: np.ndarray) -> np.ndarray:
    """Per-utterance mean and variance normalisation of each band (``[frames, bands]``); empty stays empty."""
    if mel.shape[0] < 2:
        return mel
    return ((mel - mel.mean(axis=0)) / (mel.std(axis=0) + 1e-3)).astype(np.float32)


def dtw_distances(query: np.ndarray, candidates: list[np.ndarray]) -> np.ndarray:
    """Mean per-step Euclidean distance along the best slope-constrained path, from ``query`` to each candidate."""
    n = query.shape[0]
    lengths = np.array([c.shape[0] for c in candidates])
    m = int(lengths.max())
    dim = query.shape[1]
    stack = np.full((len(candidates), m, dim), np.nan, np.float32)
    for i, c in enumerate(candidates):
        stack[i, : c.shape[0]] = c
    cost = np.sqrt(((query[None, :, None, :] - stack[:, None, :, :]) ** 2).sum(-1))  # [C, n, m]
    cost = np.where(np.isnan(cost), np.inf, cost)
    inf = np.inf
    acc = np.full((len(candidates), n, m), inf)
    acc[:, 0, 0] = cost[:, 0, 0]
    for i in range(1, n):
        best = np.full((len(candidates), m), inf)
        best[:, 1:] = acc[:, i - 1, :-1]  # (1, 1)
        best[:, 2:] = np.minimum(best[:, 2:], acc[:, i - 1, :-2])  # (1, 2)
        if i >= 2:
            best[:, 1:] = np.minimum(best[:, 1:], acc[:, i - 2, :-1])  # (2, 1)
        acc[:, i] = cost[:, i] + best
    total = acc[np.arange(len(candidates)), n - 1, lengths - 1]
    return total / (n + lengths)


def generate_answer(
    model: S2SModel,
    user: torch.Tensor,
    question_end: int,
    silence_codes: torch.Tensor,
    max_answer_frames: int = 400,
) -> tuple[torch.Tensor, int | None]:
    """Greedy streaming answer to ``user`` codes ``[n_q, T]``; after ``T`` the last (silent) user frame repeats.

    Returns ``(answer codes [1, n_q, F] ready for the codec, step at which the answer started or None)``.
    """
    c = model.config
    gen = StreamingGenerator(model, 1, Sampling())
    tracker = TurnTracker(c.silence_id, 2, max_answer_frames, max_wait_frames=150)
    frames, started = [], None
    t = 0
    with torch.inference_mode():
        while not tracker.ended:
            frame_in = user[:, min(t, user.shape[1] - 1)][None].long()
            gen.step(frame_in)
            tracker.input_ended = t >= question_end
            if gen.frame is not None and tracker.observe(int(gen.frame[0, 0])):
                started = t - 1 if started is None else started
                frames.append(codec_frame(gen.frame, silence_codes, c.card))
            t += 1
    if not frames:
        return torch.zeros(1, c.n_q, 0, dtype=torch.long), None
    return torch.stack(frames, dim=2), started


def rank_accuracy(
    generated: list[np.ndarray],
    references: list[np.ndarray],
    reference_texts: list[str],
    target_texts: list[str],
) -> tuple[float, float, list[bool]]:
    """Rank-1 accuracy of ``generated`` log-mels against ``references``; also the chance level and the hits."""
    hits = []
    chance = []
    for mel, target in zip(generated, target_texts, strict=True):
        same = [t == target for t in reference_texts]
        chance.append(sum(same) / len(same))
        if mel.shape[0] < 2:
            hits.append(False)
            continue
        nearest = int(np.argmin(dtw_distances(mel, references)))
        hits.append(same[nearest])
    n = max(len(hits), 1)
    return sum(hits) / n, sum(chance) / n, hits


def _decode(codec, codes: np.ndarray) -> np.ndarray:
    return codec.decode(torch.from_numpy(codes.astype(np.int64))[None])[0, 0].numpy()


def reference_mels(codec, pairs, normalise: bool = True) -> list[np.ndarray]:
    """Log-mels of the pairs' reference answers, decoded by the codec (CMVN-normalised unless ``normalise`` is off)."""
    post = cmvn if normalise else (lambda m: m)
    with torch.inference_mode():
        return [
            post(log_mel(_decode(codec, p.system[:, p.answer_start : p.answer_end]), codec.sample_rate))
            for p in pairs
        ]


def oracle_accuracy(codec, pairs, split: str, limit: int | None = None, normalise: bool = True) -> dict:
    """The metric's own resolution: each reference answer ranked against the split's other references.

    ``other_voice``: the share of answers whose nearest other reference says the same text (the other rendering,
    another voice), over answers that have one; a perfect copy of the pair's own answer always scores 1.
    """
    chosen = [p for p in pairs if p.split == split][:limit]
    refs = reference_mels(codec, chosen, normalise)
    texts = [p.response_text or p.id for p in chosen]
    hits = []
    for i, mel in enumerate(refs):
        others = [j for j in range(len(refs)) if j != i]
        if texts[i] not in {texts[j] for j in others}:
            continue
        nearest = others[int(np.argmin(dtw_distances(mel, [refs[j] for j in others])))]
        hits.append(texts[nearest] == texts[i])
    return {"split": split, "n": len(hits), "other_voice": round(float(np.mean(hits)), 4) if hits else None}


def evaluate_content(
    model: S2SModel, codec, pairs, split: str, limit: int | None = None, normalise: bool = True
) -> dict:
    """Answer every pair of ``split`` (up to ``limit``) and rank against that split's reference answers."""
    chosen = [p for p in pairs if p.split == split][:limit]
    if not chosen:
        return {"split": split, "n": 0}
    post = cmvn if normalise else (lambda m: m)
    with torch.inference_mode():
        silence = codec.encode(torch.zeros(1, 1, codec.frame_size * 16))[:, :, -1]
        references = reference_mels(codec, chosen, normalise)
        generated, started = [], []
        for p in chosen:  # the wait-for-an-answer timeout counts from the reference answer's start
            codes, start = generate_answer(
                model, torch.from_numpy(p.user.astype(np.int64)), p.answer_start, silence
            )
            started.append(start)
            wav = codec.decode(codes)[0, 0].numpy() if codes.shape[-1] else np.zeros(0, np.float32)
            generated.append(
                post(log_mel(wav, codec.sample_rate)) if wav.size else np.zeros((0, 40), np.float32)
            )
    texts = [p.response_text or p.id for p in chosen]
    accuracy, chance, hits = rank_accuracy(generated, references, texts, texts)
    answered = [s is not None for s in started]
    onset_ms = [
        (s - p.answer_start) * 1000 / model.config.frame_rate
        for s, p in zip(started, chosen, strict=True)
        if s is not None
    ]
    return {
        "split": split,
        "n": len(chosen),
        "rank1_accuracy": round(accuracy, 4),
        "chance": round(chance, 4),
        "answered": round(sum(answered) / len(chosen), 4),
        "onset_error_ms_median": float(np.median(onset_ms)) if onset_ms else None,
        "cmvn": normalise,
    }


def main(argv: list[str] | None = None) -> int:
    from custom_model.s2s_data import PairLayout, load_codec, prepare_pairs

    p = argparse.ArgumentParser(
        prog="python -m custom_model.s2s.content", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--s2s", type=Path, default=Path("custom_model/checkpoints/s2s-small"))
    p.add_argument("--codec", type=Path, default=None, help="default: the S2S checkpoint's codec/ folder")
    p.add_argument("--pairs", default="telugu-mini-qa")
    p.add_argument("--splits", default="train,test")
    p.add_argument("--limit", type=int, default=None, help="at most N pairs per split")
    p.add_argument("--gap-ms", type=float, default=PairLayout.gap_ms)
    p.add_argument("--tail-ms", type=float, default=PairLayout.tail_ms)
    p.add_argument("--trim-silence", action="store_true", help="the layout the model was trained with")
    p.add_argument("--cache-dir", type=Path, default=Path(".cache/s2s-tokens"))
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: per-frame ops are tiny)")
    p.add_argument("--no-cmvn", action="store_true", help="compare raw log-mels (the metric before CMVN)")
    p.add_argument(
        "--oracle",
        action="store_true",
        help="also rank each reference among the others (the metric's resolution)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    codec_dir = args.codec or (args.s2s / "codec")
    splits = tuple(s for s in args.splits.split(",") if s)
    layout = PairLayout(gap_ms=args.gap_ms, tail_ms=args.tail_ms, trim_silence=args.trim_silence)
    pairs = prepare_pairs(args.pairs, codec_dir, splits=splits, layout=layout, cache_dir=args.cache_dir)
    model = S2SModel.from_pretrained(args.s2s)
    codec = load_codec(codec_dir)
    normalise = not args.no_cmvn
    results = [evaluate_content(model, codec, pairs, split, args.limit, normalise) for split in splits]
    if args.oracle:
        for r in results:
            r["oracle"] = oracle_accuracy(codec, pairs, r["split"], args.limit, normalise)
    print(
        "| split | pairs | rank-1 accuracy | chance | answered | median onset error (ms) | oracle: other voice |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['split']} | {r['n']} | {r.get('rank1_accuracy')} | {r.get('chance')} | {r.get('answered')} | "
            f"{r.get('onset_error_ms_median')} | {r.get('oracle', {}).get('other_voice', '')} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
