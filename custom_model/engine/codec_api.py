"""The batched streaming codec interface the engine drives, and its implementation for today's SEANet codec.

The engine never calls a codec's own ``streaming()`` object: it owns every slot's state and steps all slots as one
batch per 20 ms tick. A codec plugs in by offering a :class:`FrameCodec`:

- ``sample_rate`` (Hz), ``frame_size`` (samples per frame, e.g. 320), ``n_q`` (codebooks), ``codebook_size``;
- ``encoder_state(batch_size, device) -> list[Tensor]`` and ``decoder_state(batch_size, device) -> list[Tensor]``:
  a fresh stream's state as a flat list of tensors, **every tensor with the slot (batch) as dimension 0**;
- ``encode_frame(pcm, state) -> (codes, new_state)``: ``pcm`` ``[B, frame_size]`` float32 -> ``codes``
  ``[B, n_q]`` int64, one frame per slot;
- ``decode_frame(codes, state) -> (pcm, new_state)``: ``codes`` ``[B, n_q]`` int64 in ``[0, codebook_size)`` ->
  ``pcm`` ``[B, frame_size]`` float32.

Rules that let the engine batch, export and compile it: the two step functions are pure (they return new state
tensors and never write into the ones they were given), shapes depend only on ``B`` (no data-dependent control
flow), rows never mix (slot ``i``'s output depends only on row ``i`` of the inputs and state), and the state of a
fresh stream is the same for every slot, so the engine resets slot ``i`` by copying row 0 of a fresh state into
it. Anything traceable by ``torch.jit.trace`` and ``torch.onnx.export`` qualifies (an iSTFT head, factorised
codebooks, ...). ``tests/test_engine.py`` checks a codec against these rules (:func:`check_frame_codec`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

State = list[Tensor]


@runtime_checkable
class FrameCodec(Protocol):
    """What the engine needs from a codec: one frame per slot per call, state as batch-first tensors."""

    sample_rate: int
    frame_size: int
    n_q: int
    codebook_size: int

    def encoder_state(self, batch_size: int, device: torch.device | str = "cpu") -> State: ...

    def decoder_state(self, batch_size: int, device: torch.device | str = "cpu") -> State: ...

    def encode_frame(self, pcm: Tensor, state: State) -> tuple[Tensor, State]: ...

    def decode_frame(self, codes: Tensor, state: State) -> tuple[Tensor, State]: ...


def _flatten(tree, leaves: list[Tensor], lstm: bool = False):
    """Nested lists/tuples of tensors (None allowed) -> spec; LSTM ``(h, c)`` ``[layers, B, H]`` go batch-first."""
    if tree is None:
        return None
    if isinstance(tree, Tensor):
        leaves.append(tree.transpose(0, 1) if lstm else tree)
        return ("t", lstm)
    if (
        isinstance(tree, tuple)
        and len(tree) == 2
        and all(isinstance(t, Tensor) and t.dim() == 3 for t in tree)
    ):
        return ("tuple", [_flatten(t, leaves, lstm=True) for t in tree])
    return (type(tree).__name__, [_flatten(t, leaves) for t in tree])


def _unflatten(spec, leaves: list[Tensor], pos: list[int]):
    if spec is None:
        return None
    kind, inner = spec
    if kind == "t":
        leaf = leaves[pos[0]]
        pos[0] += 1
        return leaf.transpose(0, 1).contiguous() if inner else leaf
    items = [_unflatten(s, leaves, pos) for s in inner]
    return tuple(items) if kind == "tuple" else items


def _conv_step(conv: nn.Module, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
    """:meth:`StreamingConv1d.step` for a graph: when the buffer holds exactly one output's inputs (the layers at
    the frame rate), the convolution is one matrix product of the flattened buffer with the flattened kernel;
    for a whole number of strides per frame (every SEANet layer: the frame is a multiple of the strides), the
    convolution of the whole buffer, keeping its last ``pad`` samples sliced by constants (:func:`_last`);
    otherwise the module's own step."""
    t = x.shape[-1]
    if state.shape[-1] != conv.pad or t == 0 or t % conv.stride:
        return conv.step(x, state)
    buf = torch.cat([state.to(x.dtype), x], dim=-1)
    c = conv.conv
    if conv.pad + t != conv.kernel_eff:  # several outputs: the whole buffer is used, its last ``pad`` stay
        y = F.conv1d(buf, c.weight, c.bias, c.stride, 0, c.dilation)
        return y, _last(buf, conv.pad)
    taps = buf if c.dilation[0] == 1 else buf[..., :: c.dilation[0]]  # [B, C_in, kernel]
    y = torch.addmm(c.bias, taps.flatten(1), _matmul_weight(conv))  # flatten: no Shape node in a graph
    return y[:, :, None], buf[..., conv.stride :]


def _conv_transpose_step(convtr: nn.Module, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
    """:meth:`StreamingConvTranspose1d.step` for a graph: one input frame (the first upsampling layer) is one
    matrix product; longer inputs the module's transposed convolution, its output and its overlap tail sliced by
    constants (:func:`_first`, :func:`_last`)."""
    tr = convtr.convtr
    if x.shape[-1] != 1:
        if x.shape[-1] == 0 or state.shape[-1] != convtr.overlap:
            return convtr.step(x, state)
        y = F.conv_transpose1d(x, tr.weight, tr.bias, tr.stride)  # T * stride + overlap samples
        y = torch.cat([y[..., : convtr.overlap] + state.to(y.dtype), y[..., convtr.overlap :]], dim=-1)
        return _first(y, convtr.overlap), _last(y, convtr.overlap) - tr.bias[None, :, None]
    c_in, c_out, kernel = tr.weight.shape
    y = torch.matmul(x[:, :, 0], _matmul_weight(convtr)).view(-1, c_out, kernel)
    y = y + tr.bias[None, :, None]
    y = torch.cat([y[..., : convtr.overlap] + state.to(y.dtype), y[..., convtr.overlap :]], dim=-1)
    return y[..., : convtr.stride], y[..., convtr.stride :] - tr.bias[None, :, None]


def _last(x: Tensor, n: int) -> Tensor:
    """The last ``n`` samples of ``x`` (possibly none), sliced by constants: slicing at lengths computed from
    ``x.shape`` would put Shape/Gather/Sub/Slice chains in an exported graph, a few microseconds each per frame."""
    return x[..., -n:] if n else x[..., :0]


def _first(x: Tensor, n_dropped: int) -> Tensor:
    """``x`` without its last ``n_dropped`` samples, sliced by constants (see :func:`_last`)."""
    return x[..., :-n_dropped] if n_dropped else x


def _matmul_weight(module: nn.Module) -> Tensor:
    """The kernel of a streaming (transposed) convolution as the right operand of one matrix product:
    ``[C_in * kernel, C_out]`` for a convolution, ``[C_in, C_out * kernel]`` for a transposed one."""
    weight = getattr(module, "matmul_weight", None)
    if weight is not None:
        return weight
    if hasattr(module, "convtr"):
        return module.convtr.weight.reshape(module.convtr.weight.shape[0], -1)
    return module.conv.weight.reshape(module.conv.weight.shape[0], -1).t()


def _add_matmul_weights(codec: nn.Module) -> None:
    """Give every streaming (transposed) convolution of ``codec`` its kernel as a contiguous ``matmul_weight``
    buffer: a constant operand in the layout the product wants (ONNX Runtime turns a transposed view into a
    slower kernel)."""
    from custom_model.codec.streaming import StreamingConv1d, StreamingConvTranspose1d

    for module in codec.modules():
        if isinstance(module, (StreamingConv1d, StreamingConvTranspose1d)):
            module.register_buffer("matmul_weight", None)  # the name exists before the lookup below
            module.matmul_weight = _matmul_weight(module).detach().contiguous().clone()


def graph_step(module: nn.Module, x: Tensor, state):
    """``module.step(x, state)`` of a SEANet encoder or decoder with the frame-rate layers as matrix products
    (:func:`_conv_step`, :func:`_conv_transpose_step`): the same arithmetic in fewer, faster graph nodes (ONNX
    Runtime's convolution kernels are slow on a one-frame input)."""
    from custom_model.codec.seanet import ResidualBlock
    from custom_model.codec.streaming import StreamingConv1d, StreamingConvTranspose1d, StreamingSequential

    if isinstance(module, StreamingSequential):
        new_state = []
        for child, s in zip(module, state, strict=True):
            x, s = graph_step(child, x, s)
            new_state.append(s)
        return x, new_state
    if isinstance(module, ResidualBlock):
        y, new_state = graph_step(module.block, x, state)
        return x + y, new_state
    if isinstance(module, StreamingConv1d):
        return _conv_step(module, x, state)
    if isinstance(module, StreamingConvTranspose1d):
        return _conv_transpose_step(module, x, state)
    if hasattr(module, "step"):
        return module.step(x, state)
    return module(x), state


class SeanetFrameCodec(nn.Module):
    """:class:`FrameCodec` for :class:`custom_model.codec.Codec` (SEANet + RVQ), weight norm folded in.

    Wraps the codec's own streaming modules (``encoder.step`` / ``decoder.step``, proven equal to the offline
    codec by ``tests/test_codec_streaming.py``), so its output is the codec's streaming output, frame by frame.
    """

    def __init__(self, codec) -> None:
        super().__init__()
        codec.quantizer._ensure_initialized()
        self.codec = codec.inference_copy()
        self.sample_rate = codec.sample_rate
        self.frame_size = codec.frame_size
        self.n_q = codec.n_q
        self.codebook_size = codec.codebook_size
        self._enc_spec = _flatten(self.codec.encoder.init_state(1, None), [])
        self._dec_spec = _flatten(self.codec.decoder.init_state(1, None), [])
        _add_matmul_weights(self.codec)
        books = [cb.embed[0].detach() for cb in self.codec.quantizer._codebooks()]
        # constant operands in the layout a matrix product wants (a transposed view becomes a slower kernel)
        self.register_buffer("codebooks", torch.stack(books))  # [n_q, K, D]
        self.register_buffer("codebooks_t", torch.stack([b.t().contiguous() for b in books]))  # [n_q, D, K]
        self.register_buffer("codebook_sq", torch.stack([(b * b).sum(-1) for b in books]))  # [n_q, K]

    def encoder_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        leaves: list[Tensor] = []
        _flatten(self.codec.encoder.init_state(batch_size, torch.device(device)), leaves)
        return [t.contiguous() for t in leaves]

    def decoder_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        leaves: list[Tensor] = []
        _flatten(self.codec.decoder.init_state(batch_size, torch.device(device)), leaves)
        return [t.contiguous() for t in leaves]

    def encode_frame(self, pcm: Tensor, state: State) -> tuple[Tensor, State]:
        nested = _unflatten(self._enc_spec, list(state), [0])
        z, nested = graph_step(self.codec.encoder, pcm[:, None, :], nested)
        new_state: list[Tensor] = []
        _flatten(nested, new_state)
        return self._quantize(z[:, :, 0]), new_state

    def _quantize(self, z: Tensor) -> Tensor:
        """Latents ``[B, D]`` -> codes ``[B, n_q]``: the residual nearest-neighbour search of
        :meth:`ResidualVectorQuantizer.encode`, without its once-only initialisation check (graphs need none)."""
        residual = self.codec.quantizer.rvq.project_in(z.float())
        codes = []
        for i in range(self.codebooks.shape[0]):
            idx = (self.codebook_sq[i] - 2 * residual @ self.codebooks_t[i]).argmin(dim=-1)
            codes.append(idx)
            residual = residual - self.codebooks[i][idx]
        return torch.stack(codes, dim=1)

    def decode_frame(self, codes: Tensor, state: State) -> tuple[Tensor, State]:
        nested = _unflatten(self._dec_spec, list(state), [0])
        books = self.codec.quantizer._codebooks()
        q = books[0].embed[0][codes[:, 0]]
        for i in range(1, codes.shape[1]):
            q = q + books[i].embed[0][codes[:, i]]
        q = self.codec.quantizer.rvq.project_out(q)[:, :, None]  # [B, D, 1]
        wav, nested = graph_step(self.codec.decoder, q, nested)
        new_state: list[Tensor] = []
        _flatten(nested, new_state)
        return wav[:, 0, :], new_state


class V2FrameCodec(nn.Module):
    """:class:`FrameCodec` for :class:`custom_model.codec.v2.CodecV2` (STFT + ConvNeXt + factorised RVQ + iSTFT).

    Runs the codec's own streaming arithmetic (``_encode`` / ``_decode`` with state, proven equal to the offline
    codec by ``tests/test_codec_v2.py``) on an inference copy with frozen tables, so its output is the codec's
    streaming output. The state is the codec's :class:`~custom_model.codec.state.StreamState` tensors in a fixed
    name order (all batch-first already). Decoding skips :meth:`FactorizedRVQ.decode`'s range check (a graph has no
    data-dependent branches); the engine only passes codes in range (:class:`DecodeStep` replaces the rest).
    """

    def __init__(self, codec) -> None:
        super().__init__()
        self.codec = codec.inference_copy()
        self.sample_rate = codec.sample_rate
        self.frame_size = codec.frame_size
        self.n_q = codec.n_q
        self.codebook_size = codec.codebook_size
        self._enc_names = list(self.codec.init_encoder_state(1, torch.device("cpu")).tensors)
        self._dec_names = list(self.codec.init_decoder_state(1, torch.device("cpu")).tensors)
        tables = self.codec.quantizer._tables
        # registered so that .to(device) and the weights' digest (engine caches) see them
        self.register_buffer("code_latents", tables["out"].clone())  # [n_q * K, D]
        self.register_buffer("offsets", tables["offsets"][:, 0].clone())  # [n_q]

    def encoder_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        state = self.codec.init_encoder_state(batch_size, torch.device(device))
        return [state.tensors[n].contiguous() for n in self._enc_names]

    def decoder_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        state = self.codec.init_decoder_state(batch_size, torch.device(device))
        return [state.tensors[n].contiguous() for n in self._dec_names]

    def encode_frame(self, pcm: Tensor, state: State) -> tuple[Tensor, State]:
        z, new = self.codec._encode(pcm, dict(zip(self._enc_names, state, strict=True)))
        codes = self.codec.quantizer.encode(z)  # [B, n_q, 1]
        return codes[:, :, 0], [new[n] for n in self._enc_names]

    def decode_frame(self, codes: Tensor, state: State) -> tuple[Tensor, State]:
        k = codes.shape[1]
        q = self.code_latents[codes + self.offsets[:k]].sum(dim=1)  # [B, D]
        wav, new = self.codec._decode(q[:, None, :], dict(zip(self._dec_names, state, strict=True)))
        return wav, [new[n] for n in self._dec_names]


def frame_codec(codec) -> FrameCodec:
    """The :class:`FrameCodec` of ``codec``: itself if it already is one, the v2 adapter for codec v2, else the
    SEANet (v1) adapter."""
    if all(
        hasattr(codec, name) for name in ("encode_frame", "decode_frame", "encoder_state", "decoder_state")
    ):
        return codec
    if getattr(codec, "version", 1) == 2:
        return V2FrameCodec(codec)
    return SeanetFrameCodec(codec)


@torch.no_grad()
def check_frame_codec(fc: FrameCodec, frames: int = 6, batch_size: int = 3, seed: int = 0) -> None:
    """Raise AssertionError unless ``fc`` follows the interface's rules (shapes, dtypes, batch-first state,
    no mixing of rows, pure steps)."""
    gen = torch.Generator().manual_seed(seed)
    pcm = 0.1 * torch.randn(frames, batch_size, fc.frame_size, generator=gen)
    enc = fc.encoder_state(batch_size)
    dec = fc.decoder_state(batch_size)
    enc_one = fc.encoder_state(1)
    dec_one = fc.decoder_state(1)
    for state, one in ((enc, enc_one), (dec, dec_one)):
        for t, t1 in zip(state, one, strict=True):
            assert t.shape[0] == batch_size and t1.shape[0] == 1, (
                f"state tensor {tuple(t.shape)} is not batch-first"
            )
            assert torch.equal(t, t1.expand_as(t)), "a fresh state must be the same for every slot"
    for f in range(frames):
        before = [t.clone() for t in enc]
        codes, new_enc = fc.encode_frame(pcm[f], enc)
        assert all(torch.equal(a, b) for a, b in zip(before, enc, strict=True)), (
            "encode_frame wrote into its state"
        )
        assert codes.shape == (batch_size, fc.n_q) and codes.dtype == torch.int64, (
            f"codes {tuple(codes.shape)}"
        )
        assert int(codes.min()) >= 0 and int(codes.max()) < fc.codebook_size
        one, enc_one = fc.encode_frame(pcm[f, :1], enc_one)
        assert torch.equal(one, codes[:1]), "slot 0's codes depend on the other slots"
        wav, new_dec = fc.decode_frame(codes, dec)
        assert wav.shape == (batch_size, fc.frame_size) and wav.dtype == torch.float32, (
            f"pcm {tuple(wav.shape)}"
        )
        wav1, dec_one = fc.decode_frame(codes[:1], dec_one)
        assert torch.allclose(wav1, wav[:1], atol=1e-5), "slot 0's audio depends on the other slots"
        enc, dec = new_enc, new_dec
