"""``custom``: our own streaming codec + RQ-Transformer S2S model (``custom_model/``), frame by frame.

By default every session of a loaded backend is served by one :class:`custom_model.engine.Engine`: a thread that
steps all live sessions together, one 20 ms frame each per tick (codec encode, temporal step, the depth loop over
the codebooks, codec decode), with the step traced, compiled or exported as ``optimize=`` says (``auto``: the
fastest variant that passes the parity check on this machine). ``push()`` hands audio to the engine; every
complete 20 ms frame is encoded and fed to the model, which answers with the system's tokens for that step. Once
the user's turn is over the session keeps stepping (the microphone hears silence) as fast as ticks go. Every
complete system frame that belongs to the answer is decoded and handed out at once through ``poll()``. Marks:
``first_token`` when the model emits its first non-silence token (codebook 1), ``first_audio`` with the first
decoded audio chunk. The model itself decides when to answer.

``engine=per-session`` keeps the previous path (one worker thread per session running ``StreamingGenerator`` and
the codec's own stream), so both can be measured side by side in one run.

``weights=random`` builds the architecture of ``preset`` with random weights: the answer is forced to start right
after the end of input and to last ``random_answer_s``, so the latency of the architecture is measured with a fixed
token count. Such runs are marked ``latency_only``: their audio means nothing.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.backend import Backend, BackendError, Option, OutputChunk, OutputQueue, Session, ThreadedSession
from harness.hookspecs import hookimpl

from . import _dtype

CHECKPOINTS = Path(__file__).resolve().parents[1] / "custom_model" / "checkpoints"
DEFAULT_CODEC = CHECKPOINTS / "codec-small"
DEFAULT_S2S = CHECKPOINTS / "s2s-small"
CHECKPOINT_FILES = ("config.json", "model.pt")
_END = object()
ENGINE_VARIANTS = (
    "eager",
    "torchscript",
    "compile",
    "onnxruntime",
    "int8",
    "onnxruntime-int8",
    "bf16",
    "fp16",
)


def _missing_files(*folders: Path) -> list[str]:
    return [
        str(folder / name) for folder in folders for name in CHECKPOINT_FILES if not (folder / name).is_file()
    ]


def resolve_codec_dir(s2s_dir: Path, codec: str) -> Path:
    """The codec to use: ``codec`` if given, else the one shipped with the S2S checkpoint (``s2s/codec/``), else
    the default codec checkpoint. An S2S model only understands the tokens of the codec it was trained with."""
    if codec:
        return Path(codec)
    return s2s_dir / "codec" if (s2s_dir / "codec").is_dir() else DEFAULT_CODEC


def check_codec_matches(s2s_dir: Path, codec_dir: Path) -> None:
    """Refuse a codec other than the one the S2S model was trained with (``training.json``'s ``codec_digest``)."""
    import json

    from custom_model.s2s_data import codec_digest

    info_file = s2s_dir / "training.json"
    if not info_file.is_file():
        return
    expected = json.loads(info_file.read_text()).get("codec_digest")
    actual = codec_digest(codec_dir)
    if expected and actual != expected:
        raise BackendError(
            f"custom: the S2S model in {s2s_dir} was trained on the tokens of the codec with digest {expected}, "
            f"but {codec_dir} has digest {actual}: pass codec= the codec it was trained with "
            f"(usually {s2s_dir / 'codec'})"
        )


class CustomBackend(Backend):
    name = "custom"
    description = "our streaming codec + RQ-Transformer S2S (custom_model/), frame by frame"
    endpoints_itself = True  # the model hears every frame and decides when to answer
    options = {
        "codec": Option(
            str, "", f"codec checkpoint folder; default: the S2S checkpoint's codec/, else {DEFAULT_CODEC}"
        ),
        "s2s": Option(
            str,
            "",
            "S2S checkpoint folder (config.json, model.pt); empty: the committed custom_model/checkpoints/s2s-small",
        ),
        "weights": Option(
            str,
            "checkpoint",
            "checkpoint, or random (architecture latency only)",
            choices=("checkpoint", "random"),
        ),
        "preset": Option(
            str, "small", "with weights=random: the S2S and codec preset", choices=("tiny", "small", "base")
        ),
        "device": Option(str, "cpu", "torch device: cpu, cuda, cuda:1, ..."),
        "dtype": Option(
            str,
            "auto",
            "S2S weights dtype: auto (bf16 on CUDA, float32 on CPU), float32, bfloat16, float16",
            choices=_dtype.DTYPE_CHOICES,
        ),
        "temperature": Option(float, 0.0, "sampling temperature (0 = greedy)", min=0),
        "top_k": Option(int, 0, "sample among the k most likely tokens (0 = all)", min=0),
        "seed": Option(int, 0, "sampling seed (each session starts from it)"),
        "max_answer_s": Option(float, 10.0, "cut the answer after this many seconds", min=0.02),
        "max_wait_s": Option(
            float, 3.0, "give up when no answer has started this long after the input ended", min=0
        ),
        "end_silence_ms": Option(
            float, 40.0, "the answer ends after this much silence from the model", min=20
        ),
        "random_answer_s": Option(float, 2.0, "with weights=random: length of the forced answer", min=0.02),
        "threads": Option(
            int,
            1,
            "torch intra-op threads, process-wide (per-frame ops are tiny: 1 is fastest; 0 = leave as is)",
            min=0,
        ),
        "engine": Option(
            str,
            "batched",
            "batched: one engine steps all sessions together; per-session: one thread per session (the old path)",
            choices=("batched", "per-session"),
        ),
        "optimize": Option(
            str,
            "auto",
            "how the batched engine runs a tick: auto (fastest variant passing parity here, cached), eager, "
            "torchscript, compile, onnxruntime, int8, onnxruntime-int8, bf16, fp16 (GPU)",
            choices=("auto", *ENGINE_VARIANTS),
        ),
        "turns": Option(
            str,
            "one",
            "one: the session ends with its answer; many: a conversation: after an answer the model keeps "
            "listening and may answer again, until the harness closes it (endpointing=system, turn-taking)",
            choices=("one", "many"),
        ),
        "lookahead_ms": Option(
            float,
            0.0,
            "batched engine: keep at most this much answer audio ahead of real time, then wait for the clock (0 = "
            "as fast as ticks go; the tokens do not change, only when they are computed)",
            min=0,
        ),
        "prebuffer_ms": Option(
            float,
            60.0,
            "batched engine: send the first audio once this much of the answer is ready (20 = one frame: at once); "
            "more absorbs jitter under load at the cost of first-audio time (reports/engine.md)",
            min=20,
        ),
        "decode_thread": Option(
            bool,
            False,
            "batched engine: decode each tick's answer audio in a second thread while the next tick steps, which "
            "pays where a core is idle (false: in the engine's thread, after the step; tokens and audio the same)",
        ),
        "workers": Option(
            int,
            1,
            "batched engine: serve from this many worker processes, each with its own GIL and batch; sessions go "
            "to the least busy (0 = a thread of this process)",
            min=0,
        ),
        "slots": Option(
            int,
            0,
            "batched engine: most sessions stepped at once, more wait for a slot (0 = 64, or fewer when their KV "
            "caches would pass 2 GiB)",
            min=0,
        ),
    }

    def __init__(self, **opts: Any) -> None:
        super().__init__(**opts)
        self.codec = None
        self.model = None
        self.engine = None

    @classmethod
    def weights_status(cls) -> tuple[bool | None, str]:
        codec_dir = resolve_codec_dir(DEFAULT_S2S, "")
        missing = _missing_files(DEFAULT_S2S, codec_dir)
        if missing:
            return False, "missing " + ", ".join(missing)
        return True, f"s2s {DEFAULT_S2S}, codec {codec_dir}"

    @property
    def latency_only(self) -> bool:
        return self.opts["weights"] == "random"

    def load(self) -> None:
        try:
            import torch
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(
                "The `custom` backend needs torch and vector-quantize-pytorch: pip install 's2s-bench[train]'"
            ) from exc
        from custom_model.codec import Codec, CodecConfig
        from custom_model.s2s import S2SModel, config_preset

        o = self.opts
        if o["threads"]:
            torch.set_num_threads(o["threads"])
        self.device = torch.device(o["device"])
        self.dtype_choice = _dtype.announce(
            _dtype.resolve_dtype(self.name, o["dtype"], self.device, cpu_bf16=False)
        )
        self.dtype = getattr(torch, self.dtype_choice.resolved)
        if o["weights"] == "random":
            torch.manual_seed(o["seed"])
            codec = Codec(CodecConfig.preset(o["preset"]))
            model = S2SModel(config_preset(o["preset"], n_q=codec.n_q, card=codec.codebook_size))
        else:
            s2s_dir = Path(o["s2s"]) if o["s2s"] else DEFAULT_S2S  # recorded as "": comparable across clones
            codec_dir = resolve_codec_dir(s2s_dir, o["codec"])
            missing = _missing_files(s2s_dir, codec_dir)
            if missing:
                raise BackendError(
                    "custom: checkpoint files not found: " + ", ".join(missing) + ". Expected an S2S folder "
                    f"(s2s=, default {DEFAULT_S2S}) and a codec folder (codec=, default the S2S folder's codec/, "
                    f"else {DEFAULT_CODEC}), each with config.json and model.pt: train them with "
                    "`python -m custom_model.train_codec` and `python -m custom_model.train_s2s`, or measure the "
                    "architecture with weights=random."
                )
            check_codec_matches(s2s_dir, codec_dir)
            codec = Codec.from_pretrained(codec_dir, map_location="cpu")
            model = S2SModel.from_pretrained(s2s_dir, map_location="cpu")
        c = model.config
        if (c.n_q, c.card) != (codec.n_q, codec.codebook_size):
            raise BackendError(
                f"custom: the S2S model expects {c.n_q} x {c.card} codec tokens but the codec makes "
                f"{codec.n_q} x {codec.codebook_size}: pass the codec the S2S model was trained with"
            )
        self.codec = codec.to(self.device).eval()
        self.model = model.to(self.device, self.dtype).eval()
        with torch.inference_mode():
            silence = torch.zeros(1, 1, codec.frame_size * 16, device=self.device)
            self.silence_codes = codec.encode(silence)[
                :, :, -1
            ]  # [1, n_q]: what the codec makes of digital silence
        if o["engine"] == "batched":
            self.engine = self._start_engine()

    def _start_engine(self):
        from custom_model.engine import Engine, frame_codec
        from custom_model.engine.variants import VariantUnavailable

        o = self.opts
        slots = o["slots"] or default_slots(self.model.config, self.dtype)
        kwargs = dict(
            optimize=o["optimize"],
            temperature=o["temperature"],
            top_k=o["top_k"],
            device=self.device,
            dtype=self.dtype,
            threads=max(1, o["threads"]),
            decode_thread=o["decode_thread"],
        )
        if o["workers"]:
            from custom_model.engine.process import EngineWorkerError, ProcessEngine

            try:
                return ProcessEngine(
                    self.model,
                    self.codec,
                    self.silence_codes[0],
                    workers=o["workers"],
                    max_slots=max(1, -(-slots // o["workers"])),
                    **kwargs,
                )
            except EngineWorkerError as exc:
                raise BackendError(f"custom: the engine workers could not start: {exc}") from None
        try:
            engine = Engine(
                self.model, frame_codec(self.codec), self.silence_codes[0], max_slots=slots, **kwargs
            )
        except VariantUnavailable as exc:
            raise BackendError(f"custom: optimize={o['optimize']} cannot run here: {exc}") from None
        engine.prepare()
        return engine.start()

    def describe(self) -> dict[str, Any]:
        info = _dtype.describe_dtype(super().describe(), getattr(self, "dtype_choice", None))
        if self.engine is not None:
            info["engine"] = {
                "variant": self.engine.variant,
                "slots": self.engine.max_slots,
                "workers": len(getattr(self.engine, "workers", ())),
            }
        return info

    def warmup(self) -> None:
        session = self.open_session(max_answer_frames=5)
        rng = np.random.default_rng(0)
        session.push((0.1 * rng.standard_normal(8000)).astype(np.float32))
        session.end_input()
        while not session.done:
            session.poll(timeout=0.5)
        session.close()

    def open_session(self, max_answer_frames: int | None = None) -> Session:
        if self.model is None:
            self.load()
        if self.engine is not None:
            return _EngineSession(self, max_answer_frames)
        return _CustomSession(self, max_answer_frames)

    def shutdown(self) -> None:
        if self.engine is not None:
            self.engine.stop()
        self.codec = self.model = self.engine = None


def default_slots(config, dtype, limit: int = 64, budget_bytes: int = 2 << 30) -> int:
    """``limit`` slots, or as many as fit ``budget_bytes`` of KV caches (keys and values, every temporal layer)."""
    import torch

    per_slot = 2 * config.num_layers * config.context * config.dim * torch.finfo(dtype).bits // 8
    return max(1, min(limit, budget_bytes // per_slot))


def _turn_frames(backend: CustomBackend, max_answer_frames: int | None) -> tuple[int, int, int]:
    """(max answer, max wait, end silence) in frames, from the backend's options."""
    rate = backend.model.config.frame_rate
    o = backend.opts
    answer_s = o["random_answer_s"] if backend.latency_only else o["max_answer_s"]
    return (
        max_answer_frames or max(1, int(round(answer_s * rate))),
        int(round(o["max_wait_s"] * rate)),
        max(1, int(round(o["end_silence_ms"] / 1000 * rate))),
    )


class _EngineSession(Session):
    """A session served by the backend's engine: audio goes in through ``push``; the engine thread emits."""

    def __init__(self, backend: CustomBackend, max_answer_frames: int | None = None) -> None:
        from custom_model.engine import TurnPolicy

        answer, wait, end = _turn_frames(backend, max_answer_frames)
        policy = TurnPolicy(
            end,
            answer,
            wait,
            force_answer=backend.latency_only,
            seed=backend.opts["seed"],
            conversation=backend.opts["turns"] == "many",
            lookahead_frames=int(
                round(backend.opts["lookahead_ms"] / 1000 * backend.model.config.frame_rate)
            ),
            prebuffer_frames=max(
                1, int(round(backend.opts["prebuffer_ms"] / 1000 * backend.model.config.frame_rate))
            ),
        )
        self.output = OutputQueue()
        self._audio_marked = False
        self.inner = backend.engine.open(policy, self._emit)

    def _emit(self, kind: str, payload: object) -> None:
        if kind == "audio":
            marks = () if self._audio_marked else ("first_audio",)
            self._audio_marked = True
            self.output.put(OutputChunk(audio=payload, marks=marks))
        elif kind == "first_token":
            self.output.put(OutputChunk(marks=("first_token",)))
        elif kind == "done":
            self.output.finish()
        elif kind == "error":
            self.output.fail(payload)

    def push(self, pcm: np.ndarray) -> None:
        pcm = np.asarray(pcm, dtype=np.float32)
        if pcm.ndim != 1:
            raise ValueError(f"custom: expected mono audio as a 1-D array but got shape {pcm.shape}")
        self.inner.push(pcm)

    def end_input(self) -> None:
        self.inner.end_input()

    def poll(self, timeout: float = 0.0) -> OutputChunk | None:
        return self.output.poll(timeout)

    @property
    def done(self) -> bool:
        return self.output.done

    def close(self) -> None:
        self.inner.close()


class _CustomSession(ThreadedSession):
    """The per-session path (``engine=per-session``): the worker consumes input frames as they come, steps the model and emits decoded answer frames at once."""

    def __init__(self, backend: CustomBackend, max_answer_frames: int | None = None) -> None:
        super().__init__()
        self.backend = backend
        self.inbox: queue.Queue = queue.Queue()
        self.max_answer_frames, self.max_wait_frames, self.end_silence_frames = _turn_frames(
            backend, max_answer_frames
        )
        self.start()

    def push(self, pcm: np.ndarray) -> None:
        pcm = np.asarray(pcm, dtype=np.float32)
        if pcm.ndim != 1:
            raise ValueError(f"custom: expected mono audio as a 1-D array but got shape {pcm.shape}")
        self.inbox.put(pcm.copy())

    def end_input(self) -> None:
        self.inbox.put(_END)

    def close(self) -> None:
        super().close()
        self.inbox.put(_END)

    def _take_input(self) -> tuple[list[np.ndarray], bool]:
        """Wait for input, then take everything queued: (chunks, input ended?)."""
        chunks: list[np.ndarray] = []
        item = self.inbox.get()
        while True:
            if item is _END:
                return chunks, True
            chunks.append(item)
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return chunks, False

    def produce(self, emit: Callable[[OutputChunk], None]) -> None:
        import torch

        from custom_model.s2s import Sampling, StreamingGenerator, TurnTracker
        from custom_model.s2s.generate import FORCE_SILENCE, FORCE_SPEECH, codec_frame

        b = self.backend
        o, codec, model, c = b.opts, b.codec, b.model, b.model.config
        # torch's thread count is process-wide: another backend's turn in the same run may have changed it
        if o["threads"] and torch.get_num_threads() != o["threads"]:
            torch.set_num_threads(o["threads"])
        hop = codec.frame_size
        random_weights = b.latency_only
        with torch.inference_mode():
            stream = codec.streaming(batch_size=1)
            sampling = Sampling(o["temperature"], o["top_k"], o["seed"])
            gen = StreamingGenerator(model, 1, sampling, device=b.device, dtype=b.dtype)
            tracker = TurnTracker(
                c.silence_id,
                self.end_silence_frames,
                self.max_answer_frames,
                self.max_wait_frames,
                conversation=o["turns"] == "many",
            )
            pending = np.zeros(0, np.float32)
            silence_frame = torch.zeros(1, 1, hop, device=b.device)
            marked_token = marked_audio = False

            def step(user_codes: torch.Tensor) -> None:
                nonlocal marked_token, marked_audio
                force = None
                if random_weights:
                    force = FORCE_SPEECH if tracker.input_ended else FORCE_SILENCE
                tokens = gen.step(user_codes, force)
                if not marked_token and int(tokens[0, 0]) != c.silence_id:
                    marked_token = True
                    emit(OutputChunk(marks=("first_token",)))
                if gen.frame is None or not tracker.observe(int(gen.frame[0, 0])):
                    return
                wav = stream.decode_step(codec_frame(gen.frame, b.silence_codes, c.card)[..., None])
                audio = wav[0, 0].float().cpu().numpy()
                emit(OutputChunk(audio=audio, marks=() if marked_audio else ("first_audio",)))
                marked_audio = True

            while not tracker.ended and not self.closed.is_set():
                if not tracker.input_ended:
                    chunks, ended = self._take_input()
                    pending = np.concatenate([pending, *chunks]) if chunks else pending
                    if ended:
                        pending = np.pad(pending, (0, (-pending.size) % hop))  # the last partial frame
                    usable = pending.size - pending.size % hop
                    if usable:
                        chunk = torch.from_numpy(pending[:usable]).to(b.device)[None, None]
                        pending = pending[usable:]
                        user = stream.encode_step(chunk)
                        for t in range(user.shape[-1]):
                            step(user[:, :, t])
                            if tracker.ended or self.closed.is_set():
                                break
                    tracker.input_ended = ended
                else:
                    step(stream.encode_step(silence_frame)[:, :, 0])


@hookimpl
def register_backends(register):
    register(CustomBackend)
