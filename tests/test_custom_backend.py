"""The ``custom`` backend with a tiny *random* codec and S2S model saved to a temp dir and loaded by the backend."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from s2s_fixtures import save_tiny_codec, save_tiny_s2s, toy_wave

from custom_model.codec import Codec
from custom_model.s2s import S2SModel, Sampling, TurnTracker, generate_offline
from custom_model.s2s.generate import codec_frame
from harness.backend import BackendError
from harness.registry import create_backend, get_backend_class


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("custom")
    return save_tiny_codec(root / "codec"), save_tiny_s2s(root / "s2s", card=64)


def run_session(backend, audio: np.ndarray, chunk: int = 320, timeout_s: float = 60.0):
    """Feed ``audio`` in chunks, end the turn, collect (audio, marks in order, chunks before end_input)."""
    session = backend.open_session()
    outputs, marks = [], []
    for i in range(0, audio.size, chunk):
        session.push(audio[i : i + chunk])
    session.end_input()
    deadline = time.monotonic() + timeout_s
    while not session.done:
        assert time.monotonic() < deadline, "session did not finish"
        out = session.poll(timeout=0.05)
        if out is None:
            continue
        marks.extend(out.marks)
        if out.audio is not None:
            outputs.append(out.audio)
    session.close()
    return (np.concatenate(outputs) if outputs else np.zeros(0, np.float32)), marks


def offline_answer(
    codec_dir, s2s_dir, audio, temperature, seed, max_answer_frames, max_wait_frames, end_frames
):
    """The same answer computed without any streaming: whole-signal codec, full-sequence S2S, whole-answer decode."""
    codec = Codec.from_pretrained(codec_dir)
    model = S2SModel.from_pretrained(s2s_dir)
    c = model.config
    n_in = -(-audio.size // 320)
    total = n_in + max_wait_frames + max_answer_frames + end_frames + 2
    wav = np.zeros(total * 320, np.float32)
    wav[: audio.size] = audio
    with torch.inference_mode():
        user = codec.encode(torch.from_numpy(wav)[None, None])
        silence = codec.encode(torch.zeros(1, 1, 320 * 16))[:, :, -1]
        steps = generate_offline(model, user, Sampling(temperature=temperature, seed=seed))
        tracker = TurnTracker(c.silence_id, end_frames, max_answer_frames, max_wait_frames)
        answer = []
        for t in range(1, total):
            tracker.input_ended = t >= n_in
            frame = torch.cat([steps[:, :1, t - 1], steps[:, 1:, t]], dim=1)
            if tracker.observe(int(frame[0, 0])):
                answer.append(codec_frame(frame, silence, c.card))
            if tracker.ended:
                break
        if not answer:
            return np.zeros(0, np.float32)
        return codec.decode(torch.stack(answer, dim=2))[0, 0].numpy()


def test_weights_status_tells_whether_the_default_checkpoints_exist():
    from backends.custom import DEFAULT_S2S

    cls = get_backend_class("custom")
    present, detail = cls.weights_status()
    files = [DEFAULT_S2S / "config.json", DEFAULT_S2S / "model.pt", DEFAULT_S2S / "codec" / "model.pt"]
    assert present == all(f.is_file() for f in files)
    assert str(DEFAULT_S2S) in detail


@pytest.mark.parametrize("engine", ["engine=batched,optimize=torchscript,slots=4", "engine=per-session"])
def test_streaming_backend_equals_offline_pipeline(checkpoints, engine):
    codec_dir, s2s_dir = checkpoints
    audio = toy_wave(0.45, 300, 0)
    backend = create_backend(
        f"custom:codec={codec_dir},s2s={s2s_dir},temperature=1.0,seed=7,max_answer_s=0.2,max_wait_s=0.2,{engine}"
    )
    backend.load()
    streamed, marks = run_session(backend, audio, chunk=137)  # chunks that do not line up with frames
    expected = offline_answer(codec_dir, s2s_dir, audio, 1.0, 7, 10, 10, 2)
    assert expected.size > 0
    assert streamed.size == expected.size and streamed.size % 320 == 0
    np.testing.assert_allclose(streamed, expected, atol=1e-4)
    assert marks.index("first_token") < marks.index("first_audio")
    again, _ = run_session(backend, audio, chunk=320)  # every session starts from the seed
    np.testing.assert_allclose(again, streamed, atol=1e-5)
    backend.shutdown()


def test_random_weights_mode_is_latency_only_with_a_fixed_answer_length(checkpoints):
    backend = create_backend(
        "custom:weights=random,preset=tiny,random_answer_s=0.3,seed=1,optimize=eager,slots=2"
    )
    assert backend.latency_only and backend.describe()["latency_only"] is True
    backend.load()
    backend.warmup()
    audio, marks = run_session(backend, toy_wave(0.4, 250, 1))
    assert audio.size == 15 * 320  # 0.3 s, forced to start after the input ended
    assert marks == ["first_token", "first_audio"]


def test_missing_checkpoints_name_the_files_and_where(tmp_path, checkpoints):
    codec_dir, _ = checkpoints
    backend = create_backend(f"custom:codec={codec_dir},s2s={tmp_path / 'nope'}")
    with pytest.raises(BackendError) as err:
        backend.load()
    message = str(err.value)
    assert (
        str(tmp_path / "nope" / "config.json") in message and str(tmp_path / "nope" / "model.pt") in message
    )
    assert "weights=random" in message


def test_codec_and_model_that_do_not_fit_are_refused(tmp_path, checkpoints):
    codec_dir, _ = checkpoints
    other = save_tiny_s2s(tmp_path / "s2s1024", card=1024)
    with pytest.raises(BackendError, match="64"):
        create_backend(f"custom:codec={codec_dir},s2s={other}").load()


def test_stereo_input_is_refused_clearly(checkpoints):
    codec_dir, s2s_dir = checkpoints
    backend = create_backend(f"custom:codec={codec_dir},s2s={s2s_dir},optimize=eager,slots=2")
    backend.load()
    session = backend.open_session()
    with pytest.raises(ValueError, match="mono"):
        session.push(np.zeros((320, 2), np.float32))
    session.close()


def test_the_codec_shipped_with_the_s2s_checkpoint_is_the_default(tmp_path):
    s2s_dir = save_tiny_s2s(tmp_path / "s2s", card=64)
    save_tiny_codec(s2s_dir / "codec")
    backend = create_backend(f"custom:s2s={s2s_dir},optimize=eager,slots=1")
    backend.load()
    assert backend.codec.codebook_size == 64


def test_a_codec_other_than_the_training_one_is_refused(tmp_path, checkpoints):
    codec_dir, _ = checkpoints
    s2s_dir = save_tiny_s2s(tmp_path / "s2s", card=64)
    (s2s_dir / "training.json").write_text('{"codec_digest": "0123456789abcdef"}')
    with pytest.raises(BackendError, match="0123456789abcdef"):
        create_backend(f"custom:s2s={s2s_dir},codec={codec_dir}").load()


def test_the_codec_digest_ignores_its_model_card_but_not_its_weights(tmp_path):
    """A model card edit must not make the S2S models trained on the codec refuse it; new weights must."""
    import json

    from custom_model.s2s_data import codec_digest

    codec_dir = save_tiny_codec(tmp_path / "codec")
    s2s_dir = save_tiny_s2s(tmp_path / "s2s", card=64)
    (s2s_dir / "training.json").write_text(json.dumps({"codec_digest": codec_digest(codec_dir)}))
    (codec_dir / "MODEL_CARD.md").write_text("# a card written after training\n")
    (codec_dir / "training_curve.md").write_text("| step | PESQ |\n")
    create_backend(f"custom:s2s={s2s_dir},codec={codec_dir},optimize=eager,slots=1").load()
    weights = next(p for p in codec_dir.iterdir() if p.suffix in (".pt", ".safetensors"))
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(BackendError, match="digest"):
        create_backend(f"custom:s2s={s2s_dir},codec={codec_dir},optimize=eager,slots=1").load()


def test_passes_the_latency_suite_integrity_checks(checkpoints, tmp_path):
    """The real suite, through the runner, on two synthetic clips (tiny random weights: the timings mean nothing)."""
    import subprocess
    import sys
    from pathlib import Path

    codec_dir, s2s_dir = checkpoints
    root = Path(__file__).resolve().parents[1]
    spec = f"custom:codec={codec_dir},s2s={s2s_dir},max_answer_s=0.3,seed=3,optimize=eager,slots=2"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "suites/test_latency.py",
            "-q",
            "-p",
            "no:cacheprovider",
            "--backend",
            spec,
            "--s2s-limit",
            "2",
            "--s2s-pacing",
            "fast",
            "--s2s-out",
            str(tmp_path / "run"),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "5 passed" in proc.stdout


def test_default_checkpoint_is_recorded_without_a_machine_path():
    # Run folders record backend options; gates call runs with different options "not comparable". The default
    # checkpoint must therefore not be spelled as this clone's absolute path.
    from harness.registry import create_backend

    assert create_backend("custom").describe()["options"]["s2s"] == ""


def test_a_variant_that_cannot_run_here_is_a_clear_backend_error(checkpoints):
    codec_dir, s2s_dir = checkpoints
    backend = create_backend(f"custom:codec={codec_dir},s2s={s2s_dir},optimize=bf16")
    with pytest.raises(BackendError, match="optimize=bf16.*GPU"):
        backend.load()


def test_the_engine_serves_concurrent_sessions_through_the_backend(checkpoints):
    """Three sessions at once through one backend get the answers they get one at a time."""
    import threading

    codec_dir, s2s_dir = checkpoints
    backend = create_backend(
        f"custom:codec={codec_dir},s2s={s2s_dir},temperature=1.0,seed=2,max_answer_s=0.2,max_wait_s=0.2,"
        "optimize=eager,slots=4"
    )
    backend.load()
    audios = [toy_wave(0.3 + 0.05 * i, 250 + 40 * i, i) for i in range(3)]
    alone = [run_session(backend, a)[0] for a in audios]
    together = [None] * 3

    def run(i):
        together[i] = run_session(backend, audios[i])[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    backend.shutdown()
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
