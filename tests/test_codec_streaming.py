"""Streaming == offline for the codec's encoder, quantizer codes and decoder (tiny random model, untrained)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("vector_quantize_pytorch")

from custom_model.codec import Codec, CodecConfig  # noqa: E402
from custom_model.codec.streaming import StreamingConv1d, StreamingConvTranspose1d  # noqa: E402


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    model = Codec(CodecConfig.preset("tiny", lstm_layers=1))  # with the LSTM, to test its state too
    with torch.no_grad():  # one training pass: k-means initialises every codebook from real latents
        model.quantizer.rvq.quantize_dropout = False
        model.train()(torch.randn(48, 1, 8000) * 0.1)  # 1200 frames >= 1024 codes: no duplicates
        model.quantizer.rvq.quantize_dropout = True
    return model.eval()


def assert_codes_match(streamed: torch.Tensor, offline: torch.Tensor) -> None:
    """Codes must match; a rare flip is allowed where a latent sits on a near-tie between two codebook entries
    (the streaming and offline latents differ by float rounding, ~1e-7, so the argmin can flip on a tie)."""
    assert streamed.shape == offline.shape
    flipped = (streamed != offline).float().mean().item()
    assert flipped <= 0.02, f"{flipped:.1%} of streamed codes differ from offline codes"


def random_chunks(total: int, unit: int, max_units: int, gen: torch.Generator) -> list[int]:
    sizes, left = [], total
    while left > 0:
        k = int(torch.randint(1, max_units + 1, (1,), generator=gen)) * unit
        sizes.append(min(k, left))
        left -= sizes[-1]
    return sizes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_encoder_codes_decoder_equal_offline(codec, seed):
    gen = torch.Generator().manual_seed(seed)
    hop = codec.frame_size
    n_frames = 23
    wav = torch.randn(2, 1, n_frames * hop, generator=gen) * 0.3

    z_offline = codec.encoder(wav)
    codes_offline = codec.encode(wav)
    out_offline = codec.decode(codes_offline)
    assert codes_offline.shape == (2, 8, n_frames)
    assert out_offline.shape == (2, 1, n_frames * hop)

    stream = codec.streaming(batch_size=2)
    z_parts, code_parts, out_parts, pos = [], [], [], 0
    for size in random_chunks(wav.shape[-1], hop, 4, gen):
        chunk = wav[..., pos : pos + size]
        pos += size
        with torch.no_grad():
            z, stream.encoder_state = codec.encoder.step(chunk, stream.encoder_state)
        z_parts.append(z)
    stream.reset()
    pos = 0
    for size in random_chunks(wav.shape[-1], hop, 4, gen):
        codes = stream.encode_step(wav[..., pos : pos + size])
        assert codes.shape == (2, 8, size // hop)
        code_parts.append(codes)
        pos += size
    codes_stream = torch.cat(code_parts, dim=-1)
    pos = 0
    for k in random_chunks(n_frames, 1, 5, gen):  # decode in different chunks than encoded
        out_parts.append(stream.decode_step(codes_offline[..., pos : pos + k]))
        assert out_parts[-1].shape == (2, 1, k * hop)
        pos += k

    torch.testing.assert_close(torch.cat(z_parts, dim=-1), z_offline, atol=1e-5, rtol=1e-4)
    assert_codes_match(codes_stream, codes_offline)
    torch.testing.assert_close(torch.cat(out_parts, dim=-1), out_offline, atol=1e-5, rtol=1e-4)


def test_encoder_streams_chunks_that_are_not_whole_frames(codec):
    """Odd chunk sizes are buffered: frames come out as soon as they are complete, same codes as offline."""
    gen = torch.Generator().manual_seed(5)
    wav = torch.randn(1, 1, 10 * codec.frame_size, generator=gen) * 0.3
    stream = codec.streaming()
    parts, pos = [], 0
    for size in random_chunks(wav.shape[-1], 1, 517, gen):
        parts.append(stream.encode_step(wav[..., pos : pos + size]))
        pos += size
    assert_codes_match(torch.cat(parts, dim=-1), codec.encode(wav))


def test_reset_gives_a_fresh_stream(codec):
    wav = torch.randn(1, 1, 4 * codec.frame_size) * 0.3
    stream = codec.streaming()
    first = stream.decode_step(stream.encode_step(wav))
    stream.decode_step(stream.encode_step(torch.randn_like(wav)))
    stream.reset()
    torch.testing.assert_close(stream.decode_step(stream.encode_step(wav)), first)


def test_encode_pads_the_tail_and_decode_returns_whole_frames(codec):
    wav = torch.randn(1, 1, 5 * codec.frame_size + 7) * 0.3
    codes = codec.encode(wav)
    assert codes.shape == (1, 8, 6) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < codec.codebook_size
    assert codec.decode(codes).shape == (1, 1, 6 * codec.frame_size)
    # Fewer codebooks (variable bitrate) still decode.
    assert codec.decode(codes[:, :2]).shape == (1, 1, 6 * codec.frame_size)


@pytest.mark.parametrize("kernel,stride,dilation", [(7, 1, 1), (3, 1, 4), (8, 4, 1), (10, 5, 1)])
def test_streaming_conv_equals_offline(kernel, stride, dilation):
    torch.manual_seed(kernel + stride)
    conv = StreamingConv1d(3, 5, kernel, stride=stride, dilation=dilation)
    x = torch.randn(2, 3, stride * 37)
    state, parts, pos = conv.init_state(2), [], 0
    gen = torch.Generator().manual_seed(0)
    for size in random_chunks(x.shape[-1], 1, 11, gen):
        y, state = conv.step(x[..., pos : pos + size], state)
        parts.append(y)
        pos += size
    torch.testing.assert_close(torch.cat(parts, -1), conv(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel,stride", [(4, 2), (16, 8), (5, 5)])
def test_streaming_conv_transpose_keeps_its_overlap(kernel, stride):
    torch.manual_seed(kernel)
    convtr = StreamingConvTranspose1d(3, 4, kernel, stride)
    x = torch.randn(2, 3, 19)
    state, parts, pos = convtr.init_state(2), [], 0
    for size in random_chunks(x.shape[-1], 1, 4, torch.Generator().manual_seed(1)):
        y, state = convtr.step(x[..., pos : pos + size], state)
        parts.append(y)
        pos += size
    torch.testing.assert_close(torch.cat(parts, -1), convtr(x), atol=1e-5, rtol=1e-5)


def test_save_and_load_pretrained_round_trip(codec, tmp_path):
    codec.save_pretrained(tmp_path / "c")
    loaded = Codec.from_pretrained(tmp_path / "c", map_location="cpu")
    assert loaded.config == codec.config and not loaded.training
    wav = torch.randn(1, 1, 3 * codec.frame_size) * 0.3
    torch.testing.assert_close(loaded.decode(loaded.encode(wav)), codec.decode(codec.encode(wav)))


def test_from_pretrained_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        Codec.from_pretrained(tmp_path)


def test_bad_input_gets_a_clear_error(codec):
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        codec.encode(torch.randn(1, 2, 640))
    with pytest.raises(ValueError, match="codes must lie"):
        codec.decode(torch.full((1, 8, 2), 5000))
    with pytest.raises(ValueError, match="Unknown codec preset"):
        CodecConfig.preset("huge")


def test_interface_numbers():
    codec = Codec(CodecConfig.preset("tiny"))
    assert (codec.sample_rate, codec.frame_size, codec.n_q, codec.codebook_size) == (16000, 320, 8, 1024)
    assert codec.bitrate_bps() == 4000.0
