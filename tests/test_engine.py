"""The batched engine with tiny *random* models: exact against the per-session path, batching-invariant, variants
in parity, sessions joining and leaving at any tick, and the codec interface it expects."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from s2s_fixtures import toy_wave

from custom_model.codec import Codec, CodecConfig
from custom_model.engine import Engine, TurnPolicy, check_frame_codec, frame_codec
from custom_model.engine.select import parity, parity_signal
from custom_model.engine.slots import SlotState
from custom_model.engine.variants import VariantUnavailable
from custom_model.s2s import S2SModel, Sampling, StreamingGenerator, config_preset


@pytest.fixture(scope="module")
def tiny():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the per-frame ops are tiny: more threads only spin on a busy machine
    torch.manual_seed(0)
    codec = Codec(CodecConfig.preset("tiny", codebook_size=64, lstm_layers=1)).eval()
    codec.quantizer.init_random_()
    model = S2SModel(config_preset("tiny", card=64, context=16)).eval()
    with torch.no_grad():  # sharper logits than the 0.02 init, so greedy choices are not near-ties
        for head in model.heads:
            head.weight.mul_(20)
    fc = frame_codec(codec)
    silence = codec.encode(torch.zeros(1, 1, 320 * 16))[0, :, -1]
    yield codec, model, fc, silence
    torch.set_num_threads(threads)


def make_engine(tiny, optimize="eager", **kw) -> Engine:
    _, model, fc, silence = tiny
    return Engine(model, fc, silence, optimize=optimize, **kw)


def test_the_seanet_codec_satisfies_the_frame_codec_interface(tiny):
    check_frame_codec(tiny[2])


def test_frame_codec_equals_the_codecs_own_stream(tiny):
    codec, _, fc, _ = tiny
    wav = torch.from_numpy(toy_wave(0.3, 300, 0))[None, None]
    wav = wav[..., : wav.shape[-1] // 320 * 320]
    stream = codec.streaming(1)
    expected = stream.encode_step(wav)
    state = fc.encoder_state(1)
    got = []
    for f in range(wav.shape[-1] // 320):
        codes, state = fc.encode_frame(wav[0, :, f * 320 : (f + 1) * 320], state)
        got.append(codes)
    assert torch.equal(torch.stack(got, dim=2), expected)
    dec_state = fc.decoder_state(1)
    pcm = []
    for f in range(expected.shape[-1]):
        out, dec_state = fc.decode_frame(expected[:, :, f], dec_state)
        pcm.append(out)
    np.testing.assert_allclose(
        torch.cat(pcm, 1)[0].numpy(), stream.decode_step(expected)[0, 0].numpy(), atol=1e-5
    )


def test_the_exported_codec_steps_slice_their_state_by_constants(tiny, tmp_path):
    """No ``Shape`` node in the ONNX of a codec frame step: every slice length is known when the graph is built
    (lengths computed from tensors' shapes became Shape/Gather/Sub/Slice chains, ~100 nodes per frame)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    import onnx

    from custom_model.engine.variants import export_onnx

    fc = tiny[2]

    class Encode(torch.nn.Module):
        def forward(self, pcm, *state):
            codes, new = fc.encode_frame(pcm, list(state))
            return (codes, *new)

    class Decode(torch.nn.Module):
        def forward(self, codes, *state):
            pcm, new = fc.decode_frame(codes, list(state))
            return (pcm, *new)

    codes = torch.zeros(2, fc.n_q, dtype=torch.long)
    for name, module, args in (
        ("encode", Encode(), (torch.zeros(2, fc.frame_size), *fc.encoder_state(2))),
        ("decode", Decode(), (codes, *fc.decoder_state(2))),
    ):
        path = tmp_path / f"{name}.onnx"
        export_onnx(module, args, path, 1)
        nodes = onnx.load(str(path)).graph.node
        assert any(n.op_type in ("Conv", "MatMul") for n in nodes)  # the export holds the codec
        shapes = [n.name for n in nodes if n.op_type == "Shape"]
        assert not shapes, f"{name}: {shapes}"


def drive_state(engine: Engine, signal: np.ndarray, slot_of: list[int], slots: int) -> torch.Tensor:
    """Step a fresh SlotState of ``slots`` rows where session ``i`` sits in row ``slot_of[i]``; tokens per step."""
    st = SlotState(engine.model, engine.codec, slots)
    for i, row in enumerate(slot_of):
        st.reset(row, 100 + i)
    out = []
    for t in range(signal.shape[0]):
        pcm = torch.zeros(slots, signal.shape[2])
        for i, row in enumerate(slot_of):
            pcm[row] = torch.from_numpy(signal[t, i])
        tokens, _ = st.commit_step(engine.runner.encode(st.step_inputs(pcm, engine.sampling)))
        out.append(torch.stack([tokens[row] for row in slot_of]))
    return torch.stack(out)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_engine_step_equals_the_per_session_generator(tiny, temperature):
    """Greedy and sampled (same seed): the engine's fused step gives the per-session path's tokens, 220 steps,
    ring cache wrapping (context 16)."""
    codec, model, fc, _ = tiny
    engine = make_engine(tiny, temperature=temperature, max_slots=2)
    signal = parity_signal(220, 320, slots=1)
    got = drive_state(engine, signal, [0], 1)[:, 0]
    stream = codec.streaming(1)
    gen = StreamingGenerator(model, 1, Sampling(temperature=temperature, seed=100))
    with torch.inference_mode():
        expected = torch.cat(
            [
                gen.step(stream.encode_step(torch.from_numpy(signal[t, 0])[None, None])[:, :, 0])
                for t in range(220)
            ]
        )
    assert (expected[:, 0] != model.config.silence_id).any()
    assert torch.equal(got, expected)


def test_a_sessions_tokens_do_not_depend_on_who_else_is_in_the_batch(tiny):
    engine = make_engine(tiny, temperature=1.0, top_k=8, max_slots=8)
    signal = parity_signal(60, 320, slots=3)
    alone = drive_state(engine, signal[:, :1], [0], 1)
    batched = drive_state(engine, signal, [5, 2, 0], 8)  # other slots, other neighbours, idle rows between
    assert torch.equal(alone[:, 0], batched[:, 0])


def test_rows_computed_beside_the_stepping_ones_change_nothing(tiny):
    """A step over slots 0..2 where only 0 and 2 step (slot 1 waits for audio): slot 1's row is computed and
    thrown away, its state and its sampling generator untouched; every session's tokens are those it gets
    alone, stepping only when it has a frame."""
    engine = make_engine(tiny, temperature=1.0, top_k=8, max_slots=4)
    signal = parity_signal(30, 320, slots=3)
    steps_of = [range(30), range(0, 30, 3), range(30)]  # session 1 has a frame every third tick only

    def alone(i):
        st = SlotState(engine.model, engine.codec, 1)
        st.reset(0, 100 + i)
        out = []
        for t in steps_of[i]:
            pcm = torch.from_numpy(signal[t, i : i + 1])
            tokens, _ = st.commit_step(engine.runner.encode(st.step_inputs(pcm, True)))
            out.append(tokens[0])
        return torch.stack(out)

    st = SlotState(engine.model, engine.codec, 4)
    for i in range(3):
        st.reset(i, 100 + i)
    got = [[] for _ in range(3)]
    for t in range(30):
        stepping = [i for i in range(3) if t in steps_of[i]]
        pcm = torch.zeros(3, 320)
        for i in stepping:
            pcm[i] = torch.from_numpy(signal[t, i])
        tokens, _ = st.commit_step(engine.runner.encode(st.step_inputs(pcm, True, stepping)), stepping)
        for i in stepping:
            got[i].append(tokens[i])
    for i in range(3):
        assert torch.equal(torch.stack(got[i]), alone(i)), f"session {i}"
    assert int(st.positions[1]) == len(steps_of[1])


def test_a_step_runs_over_the_contiguous_slots_unless_that_wastes_too_many_rows(tiny):
    engine = make_engine(tiny, max_slots=16)
    assert engine._step_plan([0, 1, 2]) == (3, None)
    assert engine._step_plan([0, 2]) == (3, None)  # slot 1 computed beside them
    size, rows = engine._step_plan([12])  # one stepping session behind 12 idle ones: gathered
    assert size == 1 and rows.tolist() == [12]


def test_tick_trace_writes_one_json_line_per_tick(tiny, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("S2S_ENGINE_TRACE", str(tmp_path / "trace"))
    engine = make_engine(tiny, max_slots=2).start()
    policy = dict(end_silence_frames=2, max_answer_frames=5, max_wait_frames=10, force_answer=True)
    run_engine_sessions(engine, [toy_wave(0.2, 200, 0)], [0.0], policy)
    engine.stop()
    (path,) = tmp_path.glob("trace.*.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == engine.ticks
    assert set(lines[0]) == {"t", "batch", "answering", "live", "tick_ms", "ahead"}
    assert all(line["batch"] == 1 and line["tick_ms"] > 0 for line in lines)
    assert lines[-1]["answering"] == 1 and lines[0]["answering"] == 0


def run_engine_sessions(engine: Engine, audios, starts_s, policy_kw) -> list[np.ndarray]:
    """Open one session per audio at its start time (realtime-ish pushes of 20 ms), collect each answer."""
    outputs = [[] for _ in audios]
    done = [threading.Event() for _ in audios]

    def client(i):
        time.sleep(starts_s[i])

        def emit(kind, payload, i=i):
            if kind == "audio":
                outputs[i].append(payload)
            elif kind in ("done", "error"):
                assert kind == "done", payload
                done[i].set()

        session = engine.open(TurnPolicy(**policy_kw), emit)
        for k in range(0, audios[i].size, 320):
            session.push(audios[i][k : k + 320])
            time.sleep(0.002)
        session.end_input()
        assert done[i].wait(60), "session did not finish"
        session.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(audios))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return [np.concatenate(o) if o else np.zeros(0, np.float32) for o in outputs]


def test_sessions_join_and_leave_at_any_tick_with_the_answer_they_get_alone(tiny):
    policy = dict(end_silence_frames=2, max_answer_frames=12, max_wait_frames=10, force_answer=True, seed=5)
    audios = [toy_wave(0.3 + 0.1 * i, 200 + 50 * i, i) for i in range(4)]
    alone = []
    for audio in audios:
        engine = make_engine(tiny, temperature=1.0, max_slots=4).start()
        alone.append(run_engine_sessions(engine, [audio], [0.0], policy)[0])
        engine.stop()
    for decode_thread in (True, False):
        engine = make_engine(tiny, temperature=1.0, max_slots=3, decode_thread=decode_thread).start()
        together = run_engine_sessions(engine, audios, [0.0, 0.03, 0.05, 0.2], policy)  # 4 sessions, 3 slots
        engine.stop()
        for a, b in zip(alone, together, strict=True):
            assert a.size == 12 * 320
            np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("variant", ["torchscript", "onnxruntime"])
def test_fp32_variants_give_tokens_identical_to_eager_over_200_steps(tiny, variant, tmp_path, monkeypatch):
    monkeypatch.setenv("S2S_BENCH_CACHE", str(tmp_path))
    engine = make_engine(tiny, max_slots=2)
    try:
        candidate = engine.make_runner(variant)
    except VariantUnavailable as exc:
        pytest.skip(str(exc))
    result = parity(engine, engine.runner, candidate, steps=200)
    assert result["identical"], result
    assert result["max_audio_diff"] < 1e-3


def test_int8_variant_reports_agreement_and_differs_from_eager(tiny):
    engine = make_engine(tiny, max_slots=2)
    result = parity(engine, engine.runner, engine.make_runner("int8"), steps=40)
    assert 0.2 < result["token_agreement"] <= 1.0
    assert result["max_audio_diff"] >= 0.0


def test_gpu_only_variants_refuse_a_cpu_clearly(tiny):
    with pytest.raises(VariantUnavailable, match="GPU"):
        make_engine(tiny, optimize="bf16")


def test_auto_picks_a_passing_fp32_variant_and_caches_the_decision(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("S2S_BENCH_CACHE", str(tmp_path))
    from custom_model.engine import select

    monkeypatch.setattr(select, "AUTO_CANDIDATES", ("eager", "torchscript"))
    monkeypatch.setattr(select, "PARITY_STEPS", 40)  # the 200-step parity of each variant is tested above
    calls = []
    real = select.parity
    monkeypatch.setattr(select, "parity", lambda *a, **k: calls.append(1) or real(*a, **k))
    _, model, fc, silence = tiny
    first = Engine(model, fc, silence, optimize="auto", max_slots=2)
    assert first.variant in ("eager", "torchscript")
    decision = first.selection
    assert {c["variant"] for c in decision["candidates"]} == {"eager", "torchscript"}
    assert all(c["identical"] for c in decision["candidates"])
    files = list((tmp_path / "engine").glob("auto-*.json"))
    assert len(files) == 1
    n_calls = len(calls)
    again = Engine(model, fc, silence, optimize="auto", max_slots=2)
    assert again.variant == first.variant and again.selection["cached"] == str(files[0])
    assert len(calls) == n_calls  # read from the cache: no second parity run


def test_the_bf16_gpu_path_runs_on_cpu_as_far_as_it_can(tiny):
    """``optimize=bf16`` on a GPU is eager with weights and KV caches in bf16: run that path here (no GPU)."""
    _, model, fc, silence = tiny
    engine = Engine(model, fc, silence, optimize="eager", dtype=torch.bfloat16, max_slots=2)
    assert engine.state.keys.dtype == torch.bfloat16
    result = parity(
        make_engine(tiny, max_slots=2), make_engine(tiny, max_slots=2).runner, engine.runner, steps=30
    )
    assert result["token_agreement"] > 0.2  # bf16 rounds: close to, not equal to, fp32


# -- codec v2 (tiny, random) through the same interface and engine -------------------------------------------------
@pytest.fixture(scope="module")
def tiny_v2():
    from custom_model.codec.v2 import CodecV2, CodecV2Config

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(1)
    codec = CodecV2(CodecV2Config.preset("tiny", codebook_size=64, enc_kernel=3, dec_kernel=3)).eval()
    model = S2SModel(config_preset("tiny", card=64, context=16)).eval()
    with torch.no_grad():
        for head in model.heads:
            head.weight.mul_(20)
    fc = frame_codec(codec)
    silence = codec.encode(torch.zeros(1, 1, 320 * 16))[0, :, -1]
    yield codec, model, fc, silence
    torch.set_num_threads(threads)


def test_codec_v2_gets_its_own_frame_codec_and_satisfies_the_interface(tiny_v2):
    from custom_model.engine import V2FrameCodec

    assert isinstance(tiny_v2[2], V2FrameCodec)
    check_frame_codec(tiny_v2[2])


def test_v2_frame_codec_equals_the_codecs_own_stream(tiny_v2):
    codec, _, fc, _ = tiny_v2
    wav = torch.from_numpy(toy_wave(0.3, 300, 0))[None, None]
    wav = wav[..., : wav.shape[-1] // 320 * 320]
    stream = codec.streaming(1)
    expected = stream.encode_step(wav)
    state, got = fc.encoder_state(1), []
    for f in range(wav.shape[-1] // 320):
        codes, state = fc.encode_frame(wav[0, :, f * 320 : (f + 1) * 320], state)
        got.append(codes)
    assert torch.equal(torch.stack(got, dim=2), expected)
    dec_state, pcm = fc.decoder_state(1), []
    for f in range(expected.shape[-1]):
        out, dec_state = fc.decode_frame(expected[:, :, f], dec_state)
        pcm.append(out)
    np.testing.assert_allclose(
        torch.cat(pcm, 1)[0].numpy(), stream.decode_step(expected)[0, 0].numpy(), atol=1e-5
    )


def test_engine_on_codec_v2_equals_the_per_session_path_and_is_batching_invariant(tiny_v2):
    codec, model, fc, silence = tiny_v2
    engine = Engine(model, fc, silence, optimize="eager", max_slots=4)
    signal = parity_signal(80, 320, slots=2)
    got = drive_state(engine, signal[:, :1], [0], 1)[:, 0]
    stream = codec.streaming(1)
    gen = StreamingGenerator(model, 1, Sampling(seed=100))
    with torch.inference_mode():
        expected = torch.cat(
            [
                gen.step(stream.encode_step(torch.from_numpy(signal[t, 0])[None, None])[:, :, 0])
                for t in range(80)
            ]
        )
    assert torch.equal(got, expected)
    batched = drive_state(engine, signal, [3, 1], 4)
    assert torch.equal(batched[:, 0], got)


def test_onnxruntime_variant_on_codec_v2_is_identical_to_eager(tiny_v2, tmp_path, monkeypatch):
    monkeypatch.setenv("S2S_BENCH_CACHE", str(tmp_path))
    _, model, fc, silence = tiny_v2
    engine = Engine(model, fc, silence, optimize="eager", max_slots=2)
    try:
        candidate = engine.make_runner("onnxruntime")
    except VariantUnavailable as exc:
        pytest.skip(str(exc))
    result = parity(engine, engine.runner, candidate, steps=200)
    assert result["identical"], result
    assert result["max_audio_diff"] < 1e-3


def test_lookahead_paces_the_answer_to_the_clock_without_changing_it(tiny):
    """With lookahead_frames=N the answer's audio runs at most N frames ahead of real time; the audio is the same."""
    audio = toy_wave(0.3, 250, 1)
    policy = dict(end_silence_frames=2, max_answer_frames=15, max_wait_frames=10, force_answer=True, seed=5)
    free = make_engine(tiny, temperature=1.0, max_slots=2).start()
    expected = run_engine_sessions(free, [audio], [0.0], policy)[0]
    free.stop()

    engine = make_engine(tiny, temperature=1.0, max_slots=2).start()
    stamps, out, done = [], [], threading.Event()

    def emit(kind, payload):
        if kind == "audio":
            stamps.append(time.monotonic())
            out.append(payload)
        elif kind in ("done", "error"):
            done.set()

    session = engine.open(TurnPolicy(**policy, lookahead_frames=3), emit)
    session.push(audio)
    session.end_input()
    assert done.wait(60)
    engine.stop()
    np.testing.assert_allclose(np.concatenate(out), expected, atol=1e-5)
    # frame k (k >= 3) may not be computed before t0 + (k - 3) x 20 ms: the last of 15 no sooner than 11 x 20 ms
    # after the first was computed; the stamps are when frames were sent by the decode thread, which sends the
    # first up to a tick after it was computed: one frame of slack (without lookahead: all 15 within ~20 ms)
    assert len(stamps) == 15
    assert stamps[-1] - stamps[0] >= 10 * 0.020


@pytest.mark.parametrize("decode_thread", [False, True])
def test_prebuffer_holds_the_first_frames_back_when_loaded_and_loses_none(tiny, decode_thread):
    """prebuffer_frames=K on a loaded engine: the first K answer frames arrive together, later ones one by one;
    the audio is the same, and an answer shorter than K frames is sent whole. On an engine whose ticks are
    faster than ``prebuffer_tick_s`` nothing is held."""
    audio = toy_wave(0.3, 250, 1)
    for answer, k, tick_s in ((12, 4, 0.0), (3, 5, 0.0), (12, 4, 3600.0)):
        policy = dict(
            end_silence_frames=2, max_answer_frames=answer, max_wait_frames=10, force_answer=True, seed=5
        )
        plain = make_engine(tiny, temperature=1.0, max_slots=2).start()
        expected = run_engine_sessions(plain, [audio], [0.0], policy)[0]
        plain.stop()
        engine = make_engine(tiny, temperature=1.0, max_slots=2, decode_thread=decode_thread).start()
        ticks, done = [], threading.Event()

        def emit(kind, payload, engine=engine, ticks=ticks, done=done):
            if kind == "audio":
                ticks.append((engine.decodes, payload))  # which decode sent it (one decode per tick)
            elif kind in ("done", "error"):
                done.set()

        session = engine.open(TurnPolicy(**policy, prebuffer_frames=k, prebuffer_tick_s=tick_s), emit)
        session.push(audio)
        session.end_input()
        assert done.wait(60)
        engine.stop()
        np.testing.assert_allclose(np.concatenate([p for _, p in ticks]), expected, atol=1e-5)
        first = min(k, answer) if tick_s == 0.0 else 1
        assert len({t for t, _ in ticks[:first]}) == 1  # sent in one tick
        assert len({t for t, _ in ticks[first - 1 :]}) == len(ticks) - first + 1  # then one per tick


@pytest.mark.parametrize("decode_thread", [False, True])
def test_an_answer_that_starts_while_the_user_talks_is_prebuffered_on_an_idle_engine(tiny, decode_thread):
    """Frames of an answer that starts during the input come one per input frame, with the input's jitter:
    the prebuffer holds them even when the engine is not loaded."""
    audio = toy_wave(1.0, 250, 2)  # 50 frames
    policy = dict(end_silence_frames=2, max_answer_frames=8, max_wait_frames=10, seed=5)
    engine = make_engine(tiny, temperature=1.0, max_slots=2, decode_thread=decode_thread).start()
    sent, done, pushed = [], threading.Event(), [0]

    def emit(kind, payload):
        if kind == "audio":
            sent.append((engine.decodes, pushed[0]))
        elif kind in ("done", "error"):
            done.set()

    session = engine.open(TurnPolicy(**policy, prebuffer_frames=4, prebuffer_tick_s=3600.0), emit)
    for k in range(0, audio.size, 320):
        session.push(audio[k : k + 320])
        pushed[0] += 1
        time.sleep(0.005)
    session.end_input()
    assert done.wait(60)
    engine.stop()
    assert len(sent) >= 4 and sent[3][1] < 50, "the random model should answer while the input is coming in"
    assert len({decode for decode, _ in sent[:4]}) == 1  # the first four frames went out together


def test_a_slow_decode_thread_still_sends_every_frame_before_done(tiny):
    """The engine's thread steps on while the decode thread works: a decode that lags a tick behind must still
    send the session's last frame before its "done" (what is last is decided when the frame is stepped)."""
    policy = dict(end_silence_frames=2, max_answer_frames=12, max_wait_frames=10, force_answer=True, seed=5)
    audio = toy_wave(0.3, 200, 0)
    plain = make_engine(tiny, temperature=1.0, max_slots=2).start()
    expected = run_engine_sessions(plain, [audio], [0.0], policy)[0]
    plain.stop()
    engine = make_engine(tiny, temperature=1.0, max_slots=2, decode_thread=True)
    decode = engine.runner.decode

    def slow_decode(args):
        time.sleep(0.03)  # the engine's thread meanwhile steps the next frames (~1 ms each here)
        return decode(args)

    engine.runner.decode = slow_decode
    engine.start()
    got = run_engine_sessions(engine, [audio], [0.0], policy)[0]
    engine.stop()
    assert expected.size == 12 * 320
    np.testing.assert_allclose(got, expected, atol=1e-5)
