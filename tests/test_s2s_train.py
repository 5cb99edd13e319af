"""S2S training end to end on toy pairs with a tiny random codec: data prep, a few steps, resume, export."""

from __future__ import annotations

import json

import numpy as np
import torch
from s2s_fixtures import save_tiny_codec, write_toy_pairs

from custom_model import train_s2s
from custom_model.s2s import S2SModel
from custom_model.s2s_data import PairLayout, encode_pair, load_codec, prepare_pairs, speech_bounds


def test_pairs_are_encoded_once_with_silence_then_answer(tmp_path):
    manifest = write_toy_pairs(tmp_path / "data")
    codec_dir = save_tiny_codec(tmp_path / "codec")
    layout = PairLayout(gap_ms=100, tail_ms=60)
    pairs = prepare_pairs(
        str(manifest), codec_dir, layout=layout, cache_dir=tmp_path / "cache", progress=False
    )
    assert [p.split for p in pairs].count("train") == 4 and [p.split for p in pairs].count("test") == 2
    p = pairs[0]
    q_frames = int(np.ceil(0.3 * 16000 / 320))
    assert p.answer_start == q_frames + 5  # 100 ms gap = 5 frames
    assert p.user.shape == p.system.shape and p.user.shape[0] == 8
    assert (p.system[:, : p.answer_start] == 64).all()  # silence while the user speaks and during the gap
    assert (p.system[:, p.answer_start : p.answer_end] < 64).all()  # the answer's codec tokens
    assert (p.system[:, p.answer_end :] == 64).all() and p.system.shape[1] - p.answer_end == 3
    cached = list((tmp_path / "cache").glob("*.npz"))
    assert len(cached) == 1
    again = prepare_pairs(
        str(manifest), codec_dir, layout=layout, cache_dir=tmp_path / "cache", progress=False
    )
    assert np.array_equal(again[0].user, p.user)  # read from the cache
    other = prepare_pairs(
        str(manifest), codec_dir, layout=PairLayout(gap_ms=200), cache_dir=tmp_path / "cache", progress=False
    )
    assert other[0].answer_start == q_frames + 10
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2  # a new layout never reuses stale tokens


def test_trim_silence_counts_the_gap_from_the_voice_on_both_sides(tmp_path):
    # Tiny random codec (names the fake): only the frame arithmetic of the layout is checked here.
    codec = load_codec(save_tiny_codec(tmp_path / "codec"))
    rng = np.random.default_rng(0)
    voice = lambda s: (0.1 * rng.standard_normal(int(s * 16000))).astype(np.float32)  # noqa: E731
    quiet = lambda s: np.zeros(int(s * 16000), np.float32)  # noqa: E731
    question = np.concatenate([voice(0.2), quiet(0.3)])  # 300 ms of trailing silence
    answer = np.concatenate([quiet(0.2), voice(0.2)])  # 200 ms of leading silence
    assert speech_bounds(question, 16000) == (0, 3200)
    assert speech_bounds(quiet(0.1), 16000) is None

    _, system, start, end = encode_pair(codec, question, answer, PairLayout(gap_ms=100, tail_ms=60))
    assert (start, end) == (25 + 5, 25 + 5 + 20)  # untrimmed: after the file's last sample, silence included
    user, system, start, end = encode_pair(
        codec, question, answer, PairLayout(gap_ms=100, tail_ms=60, trim_silence=True)
    )
    assert start == 10 + 5  # 100 ms after the question's last audible sample, inside its trailing silence
    assert end - start == 11  # the answer from 10 ms before its first audible sample: 210 ms = 11 frames
    assert (
        user.shape[1] == system.shape[1] == end + 3
    )  # the question's 25 frames fit; 60 ms tail after the answer
    assert (system[:, :start] == 64).all() and (system[:, end:] == 64).all()


def test_tiny_model_trains_resumes_and_exports(tmp_path):
    manifest = write_toy_pairs(tmp_path / "data")
    codec_dir = save_tiny_codec(tmp_path / "codec")
    out = tmp_path / "run"
    common = [
        "--preset",
        "tiny",
        "--pairs",
        str(manifest),
        "--codec",
        str(codec_dir),
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--batch-size",
        "4",
        "--lr",
        "3e-3",
        "--warmup",
        "2",
        "--save-every",
        "4",
        "--eval-every",
        "4",
        "--log-every",
        "1",
        "--no-progress",
        "--seed",
        "1",
    ]
    assert train_s2s.main([*common, "--steps", "8", "--until", "5"]) == 0
    first = torch.load(out / "checkpoint.pt", weights_only=False)
    assert first["step"] == 5
    assert set(first["extra"]["eval"]) == {"step", "train", "test"}
    assert train_s2s.main([*common, "--steps", "8"]) == 0
    resumed = torch.load(out / "checkpoint.pt", weights_only=False)
    assert resumed["step"] == 8
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in log if "train/loss" in r]
    assert [r["step"] for r in log if "train/loss" in r] == list(range(1, 9))  # resumed at 6, not 1
    assert min(losses[-3:]) < losses[0]

    # A resumed run continues exactly where an uninterrupted one would be.
    straight = tmp_path / "straight"
    args = [a if a != str(out) else str(straight) for a in common]
    assert train_s2s.main([*args, "--steps", "8"]) == 0
    uninterrupted = torch.load(straight / "checkpoint.pt", weights_only=False)
    for key, value in uninterrupted["models"]["model"].items():
        assert torch.allclose(value, resumed["models"]["model"][key], atol=1e-5), key

    export = tmp_path / "export"
    assert train_s2s.main(["--out", str(out), "--export", str(export)]) == 0
    model = S2SModel.from_pretrained(export)
    assert model.config.card == 64 and model.config.dropout == 0.0
    assert json.loads((export / "training.json").read_text())["step"] == 8
