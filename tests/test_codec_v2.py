"""Codec v2 (tiny random model, untrained): streaming == offline, batched explicit state, quantizer, loading."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from custom_model.codec import (  # noqa: E402
    Codec,
    CodecConfig,
    CodecV2,
    CodecV2Config,
    StreamState,
    codec_from_config,
    load_codec,
)

HOP = 320


@pytest.fixture(scope="module")
def codec() -> CodecV2:
    torch.manual_seed(0)
    # Kernels > 1 everywhere and a longer analysis window than synthesis window: every kind of state is exercised.
    return CodecV2(CodecV2Config.preset("tiny", enc_kernel=3, dec_kernel=3)).eval()


def chunks(total: int, max_units: int, gen: torch.Generator) -> list[int]:
    sizes, left = [], total
    while left > 0:
        sizes.append(min(int(torch.randint(1, max_units + 1, (1,), generator=gen)), left))
        left -= sizes[-1]
    return sizes


def assert_codes_match(streamed: torch.Tensor, offline: torch.Tensor) -> None:
    """Equal up to a rare flip on a near-tie (streamed and offline latents differ by float rounding only)."""
    assert streamed.shape == offline.shape
    assert (streamed != offline).float().mean().item() <= 0.01


@pytest.mark.parametrize("seed", [0, 1])
def test_streaming_with_explicit_state_equals_offline(codec, seed):
    gen = torch.Generator().manual_seed(seed)
    n_frames = 21
    wav = torch.randn(2, 1, n_frames * HOP, generator=gen) * 0.3
    codes = codec.encode(wav)
    audio = codec.decode(codes)
    assert codes.shape == (2, 8, n_frames) and audio.shape == (2, 1, n_frames * HOP)
    assert int(codes.min()) >= 0 and int(codes.max()) < 1024

    enc, parts, pos = codec.init_encoder_state(2), [], 0
    for k in chunks(n_frames, 4, gen):
        c, enc = codec.encode_frames(wav[..., pos * HOP : (pos + k) * HOP], enc)
        assert c.shape == (2, 8, k)
        parts.append(c)
        pos += k
    assert_codes_match(torch.cat(parts, dim=-1), codes)

    dec, outs, pos = codec.init_decoder_state(2), [], 0
    for k in chunks(n_frames, 5, gen):  # decoded in other chunks than encoded
        out, dec = codec.decode_frames(codes[..., pos : pos + k], dec)
        assert out.shape == (2, 1, k * HOP)
        outs.append(out)
        pos += k
    torch.testing.assert_close(torch.cat(outs, dim=-1), audio, atol=1e-5, rtol=1e-4)


def test_decoding_a_prefix_of_the_codebooks_is_streamable_too(codec):
    wav = torch.randn(1, 1, 6 * HOP) * 0.3
    codes = codec.encode(wav)[:, :3]
    offline = codec.decode(codes)
    dec = codec.init_decoder_state(1)
    outs = []
    for i in range(codes.shape[-1]):
        out, dec = codec.decode_frames(codes[..., i : i + 1], dec)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, dim=-1), offline, atol=1e-5, rtol=1e-4)


def test_state_functions_do_not_modify_their_input_state(codec):
    enc = codec.init_encoder_state(1)
    snapshot = enc.clone()
    codec.encode_frames(torch.randn(1, 1, HOP), enc)
    assert all(torch.equal(snapshot.tensors[k], v) for k, v in enc.tensors.items())


@pytest.fixture(scope="module")
def codec_v1() -> Codec:
    torch.manual_seed(0)
    model = Codec(CodecConfig.preset("tiny", lstm_layers=1))  # an LSTM: a state whose batch dimension is 1
    model.quantizer.init_random_()
    return model.eval()


@pytest.mark.parametrize("version", [2, 1])
def test_batched_slots_behave_like_separate_streams(codec, codec_v1, version):
    """A server's bookkeeping, the same calls for v1 and v2: slots are reset, gathered and written back; each
    slot stays its own stream."""
    codec = codec if version == 2 else codec_v1
    gen = torch.Generator().manual_seed(3)
    a, b, c = (torch.randn(1, 1, 6 * HOP, generator=gen) * 0.3 for _ in range(3))

    def alone(wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = codec.encode(wav)
        return codes, codec.decode(codes)

    enc, dec = codec.init_encoder_state(2), codec.init_decoder_state(2)
    got_codes = {0: [], 1: []}
    got_audio = {0: [], 1: []}
    for i in range(6):  # slot 0 speaks a, slot 1 speaks b for 3 frames then a new session with c
        if i == 3:
            enc.reset_([1])
            dec.reset_([1])
        second = b if i < 3 else c
        j = i if i < 3 else i - 3
        frame = torch.cat([a[..., i * HOP : (i + 1) * HOP], second[..., j * HOP : (j + 1) * HOP]])
        codes, enc = codec.encode_frames(frame, enc)
        audio, dec = codec.decode_frames(codes, dec)
        for slot in (0, 1):
            got_codes[slot].append(codes[slot : slot + 1])
            got_audio[slot].append(audio[slot : slot + 1])
    codes_a, audio_a = alone(a)
    assert_codes_match(torch.cat(got_codes[0], dim=-1), codes_a)
    torch.testing.assert_close(torch.cat(got_audio[0], dim=-1), audio_a, atol=1e-5, rtol=1e-4)
    codes_c, audio_c = alone(c[..., : 3 * HOP])
    assert_codes_match(torch.cat(got_codes[1][3:], dim=-1), codes_c)
    torch.testing.assert_close(torch.cat(got_audio[1][3:], dim=-1), audio_c, atol=1e-5, rtol=1e-4)

    # select / assign / cat move rows between states without changing them
    def row(state: StreamState, slot: int) -> list[torch.Tensor]:
        return [t.select(state.batch_dim(k), slot) for k, t in sorted(state.tensors.items())]

    def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
        return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))

    picked = enc.select([1, 0])
    assert picked.batch_size == 2
    assert same(row(picked, 0), row(enc, 1)) and same(row(picked, 1), row(enc, 0))
    assert any(t.any() for t in row(enc, 0))
    both = StreamState.cat([enc.select([0]), enc.select([1])])
    assert all(torch.equal(both.tensors[k], v) for k, v in enc.tensors.items())
    fresh = codec.init_encoder_state(2).assign_([1], enc.select([0]))
    assert same(row(fresh, 1), row(enc, 0))
    assert not any(t.any() for t in row(fresh, 0))
    with pytest.raises(ValueError, match="slots"):
        fresh.assign_([0, 1], enc.select([0]))


def test_stream_wrapper_buffers_partial_frames(codec):
    wav = torch.randn(1, 1, 10 * HOP) * 0.3
    stream = codec.streaming()
    parts = [stream.encode_step(wav[..., i : i + 500]) for i in range(0, wav.shape[-1], 500)]
    assert sum(p.shape[-1] for p in parts) == 10
    assert_codes_match(torch.cat(parts, dim=-1), codec.encode(wav))
    codes = codec.encode(wav)
    offline = codec.decode(codes)
    # The stream runs the frozen inference copy (folded weights, precomputed tables): whole chunks and one frame
    # at a time both give the offline audio.
    torch.testing.assert_close(stream.decode_step(codes), offline, atol=1e-5, rtol=1e-4)
    stream.reset()
    frames = [stream.decode_step(codes[..., i : i + 1]) for i in range(codes.shape[-1])]
    torch.testing.assert_close(torch.cat(frames, dim=-1), offline, atol=1e-5, rtol=1e-4)
    stream.reset()
    assert not any(t.any() for t in stream.encoder_state.tensors.values())


def test_quantizer_fast_path_and_dropout(codec):
    z = torch.randn(3, 7, codec.config.latent_dim)
    q = codec.quantizer
    slow = q.encode(z)
    fast_copy = codec.inference_copy()
    assert torch.equal(fast_copy.quantizer.encode(z), slow)
    torch.testing.assert_close(
        fast_copy.quantizer.decode(slow[:, :5]), q.decode(slow[:, :5]), atol=1e-5, rtol=1e-5
    )

    q.train()
    try:
        out = q(z, n_q=torch.tensor([8, 2, 5]))
    finally:
        q.eval()
    codes = out["codes"]
    assert (codes[0] >= 0).all() and (codes[1, :2] >= 0).all() and (codes[1, 2:] == -1).all()
    assert (codes[2, 5:] == -1).all()
    torch.testing.assert_close(out["q"][1], q.decode(codes[1:2, :2])[0], atol=1e-5, rtol=1e-5)
    assert q.last_counts.sum().item() == 7 * (8 + 2 + 5)
    stats = q.usage_stats(q.last_counts)
    assert 1.0 <= stats["codebook/perplexity_1"] <= 7 * 3 + 1e-3  # at most the number of latents coded
    assert 0 < stats["codebook/used_8"] <= 7 / 1024  # item 0 alone reached stage 8: at most 7 codes


def test_dead_codes_restart_from_recent_latents(codec):
    q = codec.quantizer
    usage = torch.zeros(q.n_q, q.codebook_size)
    usage[:, :1000] = 5.0  # codes 1000.. were never used
    candidates = [torch.randn(50, codec.config.codebook_dim) for _ in range(q.n_q)]
    before = q.layers[0].codebook.detach().clone()
    restarted = q.restart_dead_codes_(usage, candidates, 1.0, torch.Generator().manual_seed(0))
    try:
        rows, values = restarted[0]
        assert rows.tolist() == list(range(1000, 1024))
        assert torch.equal(q.layers[0].codebook[:1000], before[:1000])
        near = torch.cdist(q.layers[0].codebook[1000:].detach(), candidates[0]).min(dim=1).values
        assert (
            near < 0.05 * candidates[0].norm(dim=1).mean()
        ).all()  # each restarted code is a recent latent
    finally:
        with torch.no_grad():
            q.layers[0].codebook.copy_(before)


def test_version_is_recorded_and_every_version_loads(codec, tmp_path):
    codec.save_pretrained(tmp_path / "v2")
    assert json.loads((tmp_path / "v2" / "config.json").read_text())["version"] == 2
    for loaded in (load_codec(tmp_path / "v2"), Codec.from_pretrained(tmp_path / "v2")):
        assert isinstance(loaded, CodecV2) and not loaded.training
        wav = torch.randn(1, 1, 3 * HOP) * 0.3
        torch.testing.assert_close(loaded.decode(loaded.encode(wav)), codec.decode(codec.encode(wav)))
    codec.save_pretrained(tmp_path / "half", dtype=torch.float16)  # stored small, loaded back as float32
    half = load_codec(tmp_path / "half")
    assert next(half.parameters()).dtype == torch.float32
    assert (tmp_path / "half" / "model.pt").stat().st_size < 0.7 * (
        tmp_path / "v2" / "model.pt"
    ).stat().st_size
    wav = torch.randn(1, 1, 3 * HOP) * 0.3
    codes = codec.encode(wav)
    full, rounded = codec.decode(codes), half.decode(codes)
    assert ((rounded - full).norm() / full.norm()).item() < 0.01
    v1 = Codec(CodecConfig.preset("tiny"))
    v1.quantizer.init_random_()
    v1.save_pretrained(tmp_path / "v1")
    (tmp_path / "old").mkdir()  # a v1 folder written before versions existed: no "version" key
    cfg = json.loads((tmp_path / "v1" / "config.json").read_text())
    cfg.pop("version")
    (tmp_path / "old" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "old" / "model.pt").write_bytes((tmp_path / "v1" / "model.pt").read_bytes())
    for folder in ("v1", "old"):
        loaded = load_codec(tmp_path / folder)
        assert isinstance(loaded, Codec) and loaded.version == 1
    assert isinstance(codec_from_config(codec.config.to_dict()), CodecV2)
    assert isinstance(codec_from_config(cfg), Codec)
    (tmp_path / "v9").mkdir()
    (tmp_path / "v9" / "config.json").write_text(json.dumps({"version": 9}))
    with pytest.raises(ValueError, match="version 9"):
        load_codec(tmp_path / "v9")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_codec(tmp_path / "nowhere")


def test_bad_input_gets_a_clear_error(codec):
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        codec.encode(torch.randn(1, 2, 640))
    with pytest.raises(ValueError, match="codes must lie"):
        codec.decode(torch.full((1, 8, 2), 5000))
    with pytest.raises(ValueError, match="whole frames"):
        codec.encode_frames(torch.randn(1, 1, 100), codec.init_encoder_state(1))
    with pytest.raises(ValueError, match="batch"):
        codec.encode_frames(torch.randn(2, 1, HOP), codec.init_encoder_state(1))
    with pytest.raises(ValueError, match="Unknown codec v2 preset"):
        CodecV2Config.preset("huge")
    with pytest.raises(ValueError, match="sub_hop"):
        CodecV2Config(sub_hop=70)


def test_presets_keep_the_frame_grid_and_bitrate():
    for name in ("tiny", "small", "base"):
        cfg = CodecV2Config.preset(name)
        assert (cfg.sample_rate, cfg.frame_size, cfg.n_q, cfg.codebook_size) == (16000, 320, 8, 1024)
        assert cfg.bitrate_bps == 4000.0


def test_gradient_checkpointing_and_bf16_autocast_are_correct_on_cpu():
    """Block recomputation gives the same loss and gradients; under bf16 autocast the latents, the decoded audio
    and the decoder's gradients stay close to float32 (the STFT, the inverse STFT and the quantizer run in float32).
    The codes themselves can flip where a latent is near a tie, so bf16 is compared with the codes held fixed."""
    torch.manual_seed(0)
    model = CodecV2(CodecV2Config.preset("tiny")).train()
    wav = torch.randn(2, 1, 4 * HOP) * 0.3

    def loss_and_grads(checkpointing: bool) -> tuple[float, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        model.gradient_checkpointing = checkpointing
        out = model(wav, n_q=8)
        loss = (out["wav"] - wav).abs().mean() + out["commit_loss"]
        loss.backward()
        return loss.item(), [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]

    base_loss, base_grads = loss_and_grads(False)
    ckpt_loss, ckpt_grads = loss_and_grads(True)
    model.gradient_checkpointing = False
    assert ckpt_loss == pytest.approx(base_loss, rel=1e-6)
    assert len(ckpt_grads) == len(base_grads) > 50
    for a, b in zip(ckpt_grads, base_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return ((a.float() - b.float()).norm() / b.float().norm()).item()

    with torch.no_grad():
        z32 = model.encode_latents(wav)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z16 = model.encode_latents(wav)
    assert rel(z16, z32) < 0.03
    q = model.quantizer.decode(model.quantizer.encode(z32)).detach()

    def decoder_pass(bf16: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            audio = model._decode(q, None)[0]
        assert audio.dtype == torch.float32  # the inverse STFT is float32 under autocast
        (audio - wav[:, 0]).abs().mean().backward()
        grads = [
            p.grad.flatten()
            for n, p in model.named_parameters()
            if n.startswith("dec") and p.grad is not None
        ]
        return audio.detach(), grads

    audio32, grads32 = decoder_pass(False)
    audio16, grads16 = decoder_pass(True)
    assert rel(audio16, audio32) < 0.03
    cos = torch.nn.functional.cosine_similarity(torch.cat(grads16), torch.cat(grads32), dim=0)
    assert cos > 0.99
