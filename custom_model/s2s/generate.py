"""Generation with the S2S model: streaming (frame by frame, KV cache) and offline (full-sequence forward).

Both draw tokens through :func:`sample_token` in the same order (step by step, codebook 1 first), so with the same
seed they produce the same tokens; ``tests/test_s2s_generate.py`` holds them to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .model import S2SModel

FORCE_SILENCE = "silence"
"""Constraint on codebook 1: only the silence token may be drawn (the system keeps listening)."""
FORCE_SPEECH = "speech"
"""Constraint on codebook 1: the silence token may not be drawn (the system speaks)."""


@dataclass
class Sampling:
    """How tokens are drawn: ``temperature`` 0 is greedy; ``top_k`` 0 keeps every token; ``seed`` fixes the draws."""

    temperature: float = 0.0
    top_k: int = 0
    seed: int | None = None

    def generator(self, device: torch.device | str = "cpu") -> torch.Generator | None:
        if self.seed is None:
            return None
        return torch.Generator(device=device).manual_seed(int(self.seed))


def inverse_cdf_sample(
    logits: torch.Tensor, temperature: float, top_k: int, uniform: torch.Tensor
) -> torch.Tensor:
    """Token per row of ``logits`` (``[B, vocab]``) for ``uniform`` (``[B]``, in [0, 1)) by the inverse CDF.

    Plain tensor ops (no ``torch.multinomial``), so the batched engine runs the same draw inside an exported or
    compiled graph from uniforms drawn on the host by each session's own generator. A token with probability 0
    is never drawn: token ``i`` is chosen when ``cdf[i - 1] <= u * total < cdf[i]``.
    """
    logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    cdf = torch.softmax(logits, dim=-1).cumsum(dim=-1)
    threshold = uniform[:, None] * cdf[:, -1:]
    return (cdf <= threshold).sum(dim=-1).clamp(max=logits.shape[-1] - 1)


def sample_token(
    logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw one token per row of ``logits`` (``[B, vocab]``, float32): one uniform per row from ``generator``."""
    if sampling.temperature <= 0:
        return logits.argmax(dim=-1)
    uniform = torch.rand(logits.shape[0], generator=generator, device=logits.device)
    return inverse_cdf_sample(logits, sampling.temperature, sampling.top_k, uniform)


def constrain_first_codebook(logits: torch.Tensor, silence_id: int, force: str | None) -> torch.Tensor:
    """Apply a :data:`FORCE_SILENCE` / :data:`FORCE_SPEECH` constraint to codebook-1 logits (``[B, vocab]``)."""
    if force is None:
        return logits
    logits = logits.clone()
    if force == FORCE_SILENCE:
        keep = logits[:, silence_id].clone()
        logits.fill_(float("-inf"))
        logits[:, silence_id] = keep
    elif force == FORCE_SPEECH:
        logits[:, silence_id] = float("-inf")
    else:
        raise ValueError(
            f"Expected force to be None, {FORCE_SILENCE!r} or {FORCE_SPEECH!r} but got {force!r}"
        )
    return logits


class StreamingGenerator:
    """Runs the model one step (one 20 ms frame) at a time with bounded KV caches.

    ``step(user_frame)`` takes the user's ``n_q`` codec tokens of the newest frame and returns the system's
    step-aligned tokens; :attr:`frame` then holds the newest *complete* system frame (codebook 1 of the previous
    step with codebooks 2.. of this one, undoing the acoustic delay), or None after the first step.
    """

    def __init__(
        self, model: S2SModel, batch_size: int = 1, sampling: Sampling | None = None, device=None, dtype=None
    ) -> None:
        param = next(model.parameters())
        self.model = model
        self.config = model.config
        self.device = torch.device(device) if device is not None else param.device
        self.dtype = dtype or param.dtype
        self.batch_size = batch_size
        self.sampling = sampling or Sampling()
        self.temporal_caches = model.temporal.new_caches(
            batch_size, self.config.context, self.device, self.dtype
        )
        self.depth_caches = model.depth.new_caches(batch_size, self.config.n_q, self.device, self.dtype)
        self.reset()

    def reset(self) -> None:
        """Start a new conversation: empty caches, the start token as the previous step, the seed re-applied."""
        for cache in self.temporal_caches:
            cache.reset()
        self.generator = self.sampling.generator(self.device)
        self.prev_step = torch.full(
            (self.batch_size, self.config.n_q), self.config.start_id, dtype=torch.long, device=self.device
        )
        self.position = 0
        self.frame: torch.Tensor | None = None

    @torch.no_grad()
    def step(self, user_frame: torch.Tensor, force: str | None = None) -> torch.Tensor:
        """One step: ``user_frame`` ``[B, n_q]`` -> system step tokens ``[B, n_q]``; ``force`` constrains codebook 1."""
        model = self.model
        x = model.temporal_input(user_frame.to(self.device)[..., None], self.prev_step[..., None]).to(
            self.dtype
        )
        positions = torch.tensor([self.position], device=self.device)
        h = model.temporal(x, positions, caches=self.temporal_caches)
        tokens = self._depth(h, force)
        if self.position > 0:
            self.frame = torch.cat([self.prev_step[:, :1], tokens[:, 1:]], dim=1)
        self.prev_step = tokens
        self.position += 1
        return tokens

    def _depth(self, h: torch.Tensor, force: str | None) -> torch.Tensor:
        model, c = self.model, self.config
        for cache in self.depth_caches:
            cache.reset()
        tokens: list[torch.Tensor] = []
        for k in range(c.n_q):
            x = model.depth_input(h, k, tokens[-1][:, None] if k else None)
            out = model.depth(x, torch.tensor([k], device=self.device), caches=self.depth_caches)
            logits = model.logits_for(k, out[:, 0])
            if k == 0:
                logits = constrain_first_codebook(logits, c.silence_id, force)
            tokens.append(sample_token(logits, self.sampling, self.generator))
        return torch.stack(tokens, dim=1)


@torch.no_grad()
def generate_offline(
    model: S2SModel,
    user: torch.Tensor,
    sampling: Sampling | None = None,
    force: list[str | None] | None = None,
) -> torch.Tensor:
    """Reference generation without caches: every step re-runs the full sequence (quadratic; for tests).

    ``user`` ``[B, n_q, T]`` -> system step tokens ``[B, n_q, T]``; ``force[t]`` constrains codebook 1 at step t.
    """
    sampling = sampling or Sampling()
    c = model.config
    generator = sampling.generator(user.device)
    b, _, total = user.shape
    steps = torch.zeros(b, c.n_q, 0, dtype=torch.long, device=user.device)
    for t in range(total):
        placeholder = torch.zeros(
            b, c.n_q, 1, dtype=torch.long, device=user.device
        )  # never read: inputs are shifted
        h = model.temporal_forward(user[:, :, : t + 1], torch.cat([steps, placeholder], dim=2))[:, -1:]
        tokens: list[torch.Tensor] = []
        for k in range(c.n_q):
            x = torch.cat(
                [model.depth_input(h, j, tokens[j - 1][:, None] if j else None) for j in range(k + 1)], dim=1
            )
            out = model.depth(x, torch.arange(k + 1, device=user.device))
            logits = model.logits_for(k, out[:, -1])
            if k == 0:
                logits = constrain_first_codebook(logits, c.silence_id, force[t] if force else None)
            tokens.append(sample_token(logits, sampling, generator))
        steps = torch.cat([steps, torch.stack(tokens, dim=1)[..., None]], dim=2)
    return steps


class TurnTracker:
    """Follows the system's frames and says when its answer starts and ends.

    A frame is silent when its codebook-1 token is the silence token. The answer starts at the first non-silent
    frame, and ends after ``end_silence_frames`` silent frames in a row, after ``max_answer_frames`` frames, or
    (if it never starts) ``max_wait_frames`` frames after the user's input ended. With ``conversation`` an answer
    that ends before the input has ended does not end the session: the tracker waits for the next answer (a
    full-duplex conversation, where nobody calls ``end_input``).
    """

    def __init__(
        self,
        silence_id: int,
        end_silence_frames: int = 2,
        max_answer_frames: int = 500,
        max_wait_frames: int = 150,
        conversation: bool = False,
    ) -> None:
        self.silence_id = silence_id
        self.conversation = conversation
        self.answers = 0
        self.end_silence_frames = end_silence_frames
        self.max_answer_frames = max_answer_frames
        self.max_wait_frames = max_wait_frames
        self.started = False
        self.ended = False
        self.answer_frames = 0
        self.silent_run = 0
        self.frames_after_input = 0
        self.input_ended = False

    def observe(self, frame_cb1: int) -> bool:
        """Record one frame's codebook-1 token; True when the frame belongs to the answer (decode and play it)."""
        silent = frame_cb1 == self.silence_id
        if self.input_ended:
            self.frames_after_input += 1
        if not self.started:
            if not silent:
                self.started = True
                self.answer_frames = 1
                if self.answer_frames >= self.max_answer_frames:
                    self._answer_over()
                return True
            if self.input_ended and self.frames_after_input >= self.max_wait_frames:
                self.ended = True
            return False
        self.answer_frames += 1
        self.silent_run = self.silent_run + 1 if silent else 0
        if self.silent_run >= self.end_silence_frames:
            self._answer_over()
            return False
        if self.answer_frames >= self.max_answer_frames:
            self._answer_over()
        return True

    def _answer_over(self) -> None:
        self.answers += 1
        if self.conversation and not self.input_ended:
            self.started, self.answer_frames, self.silent_run = False, 0, 0
        else:
            self.ended = True


def codec_frame(frame: torch.Tensor, silence_codes: torch.Tensor, card: int) -> torch.Tensor:
    """Make a system frame ``[B, n_q]`` decodable: silent frames and special tokens become the codec's silence codes."""
    silent = frame[:, :1] >= card
    special = frame >= card
    replace = silent | special
    return torch.where(replace, silence_codes.to(frame.device).expand_as(frame), frame)
