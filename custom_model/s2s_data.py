"""Question -> answer pairs as codec tokens for S2S training: encoded once with the codec, cached on disk.

Each pair becomes one two-stream conversation on the codec's 20 ms frame grid::

    user   : question audio ........ | silence (the microphone goes on hearing nothing) .............
    system : silence token ......... | gap | answer audio tokens ...................... | tail silence

The user track (question, then digital silence until the end) is encoded as one signal, as the streaming encoder
hears it at inference; the answer is encoded on its own, as the streaming decoder starts fresh on the first answer
frame. The system stream uses the model's ``silence`` token (id ``card``) outside the answer, so "when to speak" is
learned from data: ``gap_ms`` after the question's last sample, or with ``trim_silence`` after its last audible
sample, the answer's own leading silence cut (then the first answer frame is audible ``gap_ms`` after the end of the
user's speech, the point the harness measures TTFA from).

The cache file name carries a digest of the codec's weights, the layout and the pair ids, so a new codec or new data
never reuses stale tokens.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CACHE = Path(".cache") / "s2s-tokens"


@dataclass(frozen=True)
class PairLayout:
    """Timing of a training conversation, in milliseconds (rounded to whole codec frames)."""

    gap_ms: float = 100.0
    tail_ms: float = 200.0
    max_question_s: float = 12.0
    max_answer_s: float = 12.0
    trim_silence: bool = False
    """Place the answer ``gap_ms`` after the question's last audible sample (not its last sample) and cut the
    answer's leading silence but :data:`ONSET_PREROLL_MS`. Recorded answers (festival-te-nsk) start with 150 ms of
    silence at the median (290 ms p90; reports/s2s-content.md): untrimmed, a model learns to stay quiet that long,
    and a codec that decodes silence as silence (codec v2) makes the wait count in TTFA."""


ONSET_PREROLL_MS = 10.0
"""What ``trim_silence`` keeps before an answer's first audible sample (its onset's ramp)."""


def speech_bounds(x: np.ndarray, sr: int) -> tuple[int, int] | None:
    """(first audible sample, one past the last audible sample) by harness.audio's audibility rule, or None."""
    from harness.audio import first_audible_sample

    first = first_audible_sample(x, sr)
    if first is None:
        return None
    last = first_audible_sample(np.ascontiguousarray(x[::-1]), sr)
    return first, x.size - (last or 0)


@dataclass
class TokenPair:
    """One encoded pair: frame-aligned ``user`` and ``system`` codes ``[n_q, T]`` (int16) and where the answer lies."""

    id: str
    split: str | None
    user: np.ndarray
    system: np.ndarray
    answer_start: int
    answer_end: int
    text: str | None = None
    response_text: str | None = None


DOC_SUFFIXES = (".md",)
"""Files of a checkpoint folder that document it (MODEL_CARD.md, training_curve.md) and do not decide its tokens."""


def codec_digest(codec_dir: str | Path) -> str:
    """Short SHA-256 over the files of a codec checkpoint folder that decide its tokens (names and contents).

    Documentation (:data:`DOC_SUFFIXES`) is left out: editing a model card must not make every S2S model trained on
    the codec refuse it. A folder of only ``config.json`` + weights has the same digest as before this rule."""
    h = hashlib.sha256()
    for path in sorted(Path(codec_dir).rglob("*")):
        if path.is_file() and path.suffix not in DOC_SUFFIXES:
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def load_codec(codec_dir: str | Path, device: str = "cpu"):
    from custom_model.codec import Codec

    path = Path(codec_dir)
    if not path.is_dir():
        raise FileNotFoundError(
            f"Codec checkpoint folder not found: {path} (train one with custom_model.train_codec)"
        )
    return Codec.from_pretrained(path, map_location=device).eval()


def encode_pair(
    codec, question: np.ndarray, answer: np.ndarray, layout: PairLayout
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Encode one pair; returns ``(user [n_q, T], system [n_q, T], answer_start, answer_end)`` in frames."""
    import torch

    hop, card, sr = codec.frame_size, codec.codebook_size, codec.sample_rate
    frames_per_s = sr / hop
    q_frames = math.ceil(question.size / hop)
    q_end = q_frames  # the frame after which the gap starts
    if layout.trim_silence:
        q_speech, a_speech = speech_bounds(question, sr), speech_bounds(answer, sr)
        if q_speech is not None:
            q_end = math.ceil(q_speech[1] / hop)
        if a_speech is not None:
            answer = answer[max(0, a_speech[0] - int(round(ONSET_PREROLL_MS / 1000 * sr))) :]
    gap = int(round(layout.gap_ms / 1000 * frames_per_s))
    tail = int(round(layout.tail_ms / 1000 * frames_per_s))
    a_frames = math.ceil(answer.size / hop)
    start = q_end + gap
    total = max(q_frames, start + a_frames) + tail
    user_wav = np.zeros(total * hop, np.float32)
    user_wav[: question.size] = question
    answer_wav = np.zeros(a_frames * hop, np.float32)
    answer_wav[: answer.size] = answer
    with torch.inference_mode():
        user = codec.encode(torch.from_numpy(user_wav)[None, None])[0, :, :total]
        answer_codes = codec.encode(torch.from_numpy(answer_wav)[None, None])[0, :, :a_frames]
    if user.shape[-1] != total or answer_codes.shape[-1] != a_frames:
        raise RuntimeError(
            f"Codec returned {user.shape[-1]}/{answer_codes.shape[-1]} frames for {total}/{a_frames} frames of audio"
        )
    system = torch.full((user.shape[0], total), card, dtype=torch.long)
    system[:, start : start + a_frames] = answer_codes
    return user.numpy().astype(np.int16), system.numpy().astype(np.int16), start, start + a_frames


def prepare_pairs(
    dataset: str,
    codec_dir: str | Path,
    *,
    splits: tuple[str, ...] = ("train", "test"),
    layout: PairLayout | None = None,
    cache_dir: str | Path = DEFAULT_CACHE,
    progress: bool = True,
    limit: int | None = None,
) -> list[TokenPair]:
    """Encode every usable pair of ``dataset`` (per split) once, cache the tokens, and return them.

    Pairs whose audio is missing, corrupt or too long are skipped with a message naming the file and the problem.
    """
    from harness.audio import AudioError
    from harness.data import load_utterances

    layout = layout or PairLayout()
    utts = [u for split in splits for u in load_utterances(dataset, split=split, limit=limit)]
    if not utts:
        raise ValueError(f"Dataset {dataset!r} has no utterances in splits {splits}")
    key = hashlib.sha256(
        json.dumps([codec_digest(codec_dir), asdict(layout), [(u.id, u.split) for u in utts]]).encode()
    ).hexdigest()[:16]
    cache = Path(cache_dir) / f"{Path(dataset).name}-{key}.npz"
    if cache.exists():
        return load_token_cache(cache)
    codec = load_codec(codec_dir)
    pairs: list[TokenPair] = []
    from tqdm import tqdm

    for utt in tqdm(utts, desc="encoding pairs", disable=not progress):
        if not utt.response_audio_path:
            print(f"skipping {utt.id}: no response_audio_path")
            continue
        try:
            question = utt.load_audio(codec.sample_rate)
            from harness.data import Utterance

            answer = Utterance(id=utt.id + ":answer", audio_path=utt.response_audio_path).load_audio(
                codec.sample_rate
            )
        except AudioError as exc:
            print(f"skipping {utt.id}: {exc}")
            continue
        if (
            question.size > layout.max_question_s * codec.sample_rate
            or answer.size > layout.max_answer_s * codec.sample_rate
        ):
            print(
                f"skipping {utt.id}: longer than {layout.max_question_s} s question / {layout.max_answer_s} s answer"
            )
            continue
        user, system, start, end = encode_pair(codec, question, answer, layout)
        pairs.append(TokenPair(utt.id, utt.split, user, system, start, end, utt.text, utt.response_text))
    save_token_cache(cache, pairs, {"dataset": dataset, "codec": str(codec_dir), "layout": asdict(layout)})
    return pairs


def save_token_cache(path: Path, pairs: list[TokenPair], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    index = []
    for i, p in enumerate(pairs):
        arrays[f"user_{i}"] = p.user
        arrays[f"system_{i}"] = p.system
        index.append(
            dict(
                id=p.id,
                split=p.split,
                answer_start=p.answer_start,
                answer_end=p.answer_end,
                text=p.text,
                response_text=p.response_text,
            )
        )
    tmp = path.with_suffix(
        f".{os.getpid()}.tmp.npz"
    )  # processes preparing the same data never share a temp file
    np.savez(tmp, index=np.array(json.dumps({"meta": meta, "pairs": index})), **arrays)
    tmp.replace(path)


def load_token_cache(path: str | Path) -> list[TokenPair]:
    with np.load(path) as data:
        index = json.loads(str(data["index"]))
        return [
            TokenPair(user=data[f"user_{i}"], system=data[f"system_{i}"], **rec)
            for i, rec in enumerate(index["pairs"])
        ]
