"""Our codec's streaming step (one 20 ms frame in, codes and one frame out) run by ONNX Runtime.

The codec's :class:`~custom_model.engine.codec_api.FrameCodec` (``encode_frame`` / ``decode_frame`` with the state
as flat tensors) is exported once per codec and codebook count, with a dynamic batch, and run with numpy in and
out: one native call per direction per frame, instead of a few hundred small PyTorch operations. The graphs are
the serving engine's codec half (``optimize=onnxruntime``), exported here on their own so that the codec benchmark
can time the codec alone. :meth:`OnnxStreamCodec.check_parity` compares it with the eager stream.

    ort = OnnxStreamCodec(codec, n_q=8)
    enc, dec = ort.encoder_state(1), ort.decoder_state(1)
    codes, enc = ort.encode_frame(pcm_1x320, enc)   # numpy float32 [B, 320] -> int64 [B, 8]
    pcm, dec = ort.decode_frame(codes, dec)          # -> float32 [B, 320]
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn


class _Encode(nn.Module):
    def __init__(self, fc) -> None:
        super().__init__()
        self.fc = fc

    def forward(self, pcm: Tensor, *state: Tensor):
        codes, new = self.fc.encode_frame(pcm, list(state))
        return (codes, *new)


class _Decode(nn.Module):
    def __init__(self, fc) -> None:
        super().__init__()
        self.fc = fc

    def forward(self, codes: Tensor, *state: Tensor):
        pcm, new = self.fc.decode_frame(codes, list(state))
        return (pcm, *new)


class OnnxStreamCodec:
    """``codec`` (v1 or v2) streamed frame by frame by ONNX Runtime with ``threads`` intra-op threads.

    Decoding uses the first ``n_q`` codebooks. The ONNX files are cached under
    ``$S2S_BENCH_CACHE/engine/codec-<digest>/`` (the digest covers the weights, the package's code, ``n_q`` and the
    torch / onnxruntime versions). Raises ``ModuleNotFoundError`` with the install hint when onnxruntime is missing.
    """

    def __init__(self, codec, n_q: int | None = None, threads: int = 1, folder: Path | None = None) -> None:
        try:
            import onnxruntime as ort
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                "ONNX Runtime streaming needs onnxruntime, onnx and onnxscript: pip install 's2s-bench[engine]'"
            ) from None
        from custom_model.engine.codec_api import frame_codec
        from custom_model.engine.variants import cache_root, export_onnx, module_digest

        self.fc = frame_codec(codec)
        self.n_q = n_q or self.fc.n_q
        if not 1 <= self.n_q <= self.fc.n_q:
            raise ValueError(f"n_q must be in 1..{self.fc.n_q}, got {self.n_q}")
        self.frame_size = self.fc.frame_size
        self.sample_rate = self.fc.sample_rate
        digest = module_digest(
            self.fc, extra=f"codec-stream|{self.n_q}|{torch.__version__}|{ort.__version__}"
        )
        self.folder = folder or cache_root() / f"codec-{digest}"
        enc_state = self.fc.encoder_state(1)
        dec_state = self.fc.decoder_state(1)
        codes = torch.zeros(1, self.n_q, dtype=torch.long)
        paths = {}
        for kind, module, args in (
            ("encode", _Encode(self.fc), (torch.zeros(1, self.frame_size), *enc_state)),
            ("decode", _Decode(self.fc), (codes, *dec_state)),
        ):
            path = self.folder / f"{kind}.onnx"
            if not path.is_file():
                self.folder.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f"{kind}.tmp{os.getpid()}.onnx")
                export_onnx(module.eval(), args, tmp, 1)
                os.replace(tmp, path)
            paths[kind] = path
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._sessions = {}
        for kind, path in paths.items():
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._sessions[kind] = (session, [i.name for i in session.get_inputs()])

    def encoder_state(self, batch_size: int) -> list[np.ndarray]:
        return [t.numpy() for t in self.fc.encoder_state(batch_size)]

    def decoder_state(self, batch_size: int) -> list[np.ndarray]:
        return [t.numpy() for t in self.fc.decoder_state(batch_size)]

    def _run(self, kind: str, first: np.ndarray, state: list[np.ndarray]):
        session, names = self._sessions[kind]
        values = [first, *state]
        wanted = set(names)  # the exporter drops inputs a graph does not read
        feed = {f"in{i}": v for i, v in enumerate(values) if f"in{i}" in wanted}
        out = session.run(None, feed)
        return out[0], out[1:]

    def encode_frame(self, pcm: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """``pcm`` float32 ``[B, frame_size]`` -> (codes int64 ``[B, fc.n_q]``, new state)."""
        return self._run("encode", np.ascontiguousarray(pcm, dtype=np.float32), state)

    def decode_frame(self, codes: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Codes ``[B, >= n_q]`` (the first ``n_q`` are used) -> (pcm float32 ``[B, frame_size]``, new state)."""
        return self._run("decode", np.ascontiguousarray(codes[:, : self.n_q], dtype=np.int64), state)

    @torch.no_grad()
    def check_parity(self, codec, frames: int = 100, seed: int = 0) -> dict:
        """Stream ``frames`` frames of a noisy tone through ``codec``'s own eager stream and through this one.

        Returns ``{"frames", "codes_identical", "max_audio_diff"}``; fp32 graphs should give identical codes.
        """
        rng = np.random.default_rng(seed)
        t = np.arange(frames * self.frame_size) / self.sample_rate
        wav = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
        stream = codec.streaming(batch_size=1)
        enc, dec = self.encoder_state(1), self.decoder_state(1)
        same, diff = True, 0.0
        for i in range(frames):
            chunk = wav[i * self.frame_size : (i + 1) * self.frame_size]
            ref_codes = stream.encode_step(torch.from_numpy(chunk)[None, None])[:, :, 0]
            ref_pcm = stream.decode_step(ref_codes[:, : self.n_q, None])[0, 0].numpy()
            codes, enc = self.encode_frame(chunk[None], enc)
            pcm, dec = self.decode_frame(codes, dec)
            same = same and bool(np.array_equal(codes, ref_codes.numpy()))
            diff = max(diff, float(np.abs(pcm[0] - ref_pcm).max()))
        return {"frames": frames, "codes_identical": same, "max_audio_diff": diff}
