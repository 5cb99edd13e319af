"""The S2S model (tiny random weights): streaming generation, the ring KV cache, acoustic delay, checkpoints."""

from __future__ import annotations

import pytest
import torch

from custom_model.s2s import (
    RingKVCache,
    S2SModel,
    Sampling,
    StreamingGenerator,
    TurnTracker,
    config_preset,
    delay_codes,
    generate_offline,
    undelay_codes,
)
from custom_model.s2s.generate import FORCE_SILENCE, FORCE_SPEECH


def tiny_model(**overrides) -> S2SModel:
    torch.manual_seed(0)
    return S2SModel(config_preset("tiny", card=16, **overrides)).eval()


def stream(model: S2SModel, user: torch.Tensor, sampling: Sampling, force=None) -> torch.Tensor:
    gen = StreamingGenerator(model, batch_size=user.shape[0], sampling=sampling)
    return torch.stack(
        [gen.step(user[:, :, t], force[t] if force else None) for t in range(user.shape[2])], dim=2
    )


@pytest.mark.parametrize(
    "sampling", [Sampling(), Sampling(temperature=1.0, top_k=5, seed=3), Sampling(temperature=0.7, seed=11)]
)
def test_streaming_generation_equals_offline_full_sequence_generation(sampling):
    # context 6 < 20 steps: the ring cache wraps, the offline path uses the sliding-window mask.
    model = tiny_model(context=6)
    user = torch.randint(0, 16, (2, 8, 20), generator=torch.Generator().manual_seed(1))
    offline = generate_offline(model, user, sampling)
    streamed = stream(model, user, sampling)
    assert torch.equal(streamed, offline)
    assert (streamed != model.config.start_id).all()


def test_same_seed_same_tokens_other_seed_other_tokens():
    model = tiny_model()
    user = torch.randint(0, 16, (1, 8, 15), generator=torch.Generator().manual_seed(2))
    a = stream(model, user, Sampling(temperature=1.0, seed=5))
    b = stream(model, user, Sampling(temperature=1.0, seed=5))
    c = stream(model, user, Sampling(temperature=1.0, seed=6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_forced_first_codebook_is_obeyed_in_both_paths():
    model = tiny_model()
    user = torch.randint(0, 16, (1, 8, 8))
    force = [FORCE_SILENCE] * 4 + [FORCE_SPEECH] * 4
    sampling = Sampling(temperature=1.0, seed=0)
    streamed = stream(model, user, sampling, force)
    assert torch.equal(streamed, generate_offline(model, user, sampling, force))
    assert (streamed[0, 0, :4] == model.config.silence_id).all()
    assert (streamed[0, 0, 4:] != model.config.silence_id).all()


def test_bounded_context_forgets_what_lies_beyond_it():
    # Context 4 and 2 layers: step 9 sees user frames 9 - 2 * (4 - 1) = 3 .. 9 and nothing older.
    model = tiny_model(context=4)
    assert StreamingGenerator(model).temporal_caches[0].keys.shape[2] == 4  # memory is bounded by the context
    user = torch.randint(0, 16, (1, 8, 10), generator=torch.Generator().manual_seed(4))
    system = torch.zeros(1, 8, 10, dtype=torch.long)

    def last_output(u):
        return model.temporal_forward(u, system)[:, -1]

    old, recent = user.clone(), user.clone()
    old[:, :, :3] = (old[:, :, :3] + 1) % 16
    recent[:, :, 3] = (recent[:, :, 3] + 1) % 16
    assert torch.allclose(last_output(user), last_output(old), atol=1e-6)
    assert not torch.allclose(last_output(user), last_output(recent), atol=1e-6)


def test_ring_cache_masks_by_absolute_position():
    cache = RingKVCache(1, 1, context=3, head_dim=2)
    for step in range(5):
        k = torch.full((1, 1, 1, 2), float(step))
        keys, _, mask = cache.update(k, k)
    assert sorted(cache.slot_positions.tolist()) == [2, 3, 4]
    assert mask.tolist() == [[True, True, True]]
    assert sorted(keys[0, 0, :, 0].tolist()) == [2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="one position at a time"):
        cache.update(torch.zeros(1, 1, 3, 2), torch.zeros(1, 1, 3, 2))


def test_acoustic_delay_round_trip():
    frames = torch.arange(8 * 5).view(1, 8, 5)
    steps = delay_codes(frames, pad_id=99)
    assert steps[0, 0].tolist() == frames[0, 0].tolist()  # codebook 1 is not delayed
    assert steps[0, 1].tolist() == [99, 5, 6, 7, 8]  # codebooks 2.. lag one step
    assert torch.equal(undelay_codes(steps), frames[:, :, :4])


def test_streaming_frames_undo_the_delay():
    model = tiny_model()
    gen = StreamingGenerator(model)
    user = torch.randint(0, 16, (1, 8, 6))
    steps = [gen.step(user[:, :, 0])]
    assert gen.frame is None
    for t in range(1, 6):
        steps.append(gen.step(user[:, :, t]))
        assert torch.equal(gen.frame, undelay_codes(torch.stack(steps, dim=2))[:, :, -1])


def test_turn_tracker_start_end_and_timeout():
    s = 16
    t = TurnTracker(silence_id=s, end_silence_frames=2, max_answer_frames=100, max_wait_frames=3)
    assert [t.observe(x) for x in [s, s, 3, 4, s, 5, s, s]] == [
        False,
        False,
        True,
        True,
        True,
        True,
        True,
        False,
    ]
    assert t.ended
    t = TurnTracker(silence_id=s, max_wait_frames=3)
    t.input_ended = True
    for _ in range(3):
        t.observe(s)
    assert t.ended and not t.started


def test_turn_tracker_in_a_conversation_waits_for_the_next_answer_until_the_input_ends():
    s = 16
    t = TurnTracker(
        silence_id=s, end_silence_frames=2, max_answer_frames=100, max_wait_frames=3, conversation=True
    )
    assert [t.observe(x) for x in [3, s, s, s, s, 4, 5]] == [True, True, False, False, False, True, True]
    assert not t.ended and t.answers == 1
    t.input_ended = True
    assert [t.observe(x) for x in [s, s]] == [True, False]
    assert t.ended and t.answers == 2


def test_training_loss_decreases_and_gradient_checkpointing_matches():
    torch.manual_seed(0)
    model = S2SModel(config_preset("tiny", card=16))
    user = torch.randint(0, 16, (2, 8, 12))
    system = delay_codes(torch.randint(0, 17, (2, 8, 12)), pad_id=16)
    model.train()
    loss_plain = model.loss(user, system)
    model.temporal.gradient_checkpointing = True
    loss_ckpt = model.loss(user, system)
    assert torch.allclose(loss_plain, loss_ckpt)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss = model.loss(user, system)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


def test_gradient_checkpointing_gives_the_same_gradients_and_bf16_autocast_stays_close():
    """Recomputing the temporal layers in the backward pass changes nothing; bf16 autocast (as training uses on
    CPU and GPU) gives a loss within 2 % and gradients pointing the same way as float32."""
    torch.manual_seed(0)
    model = S2SModel(config_preset("tiny", card=16)).train()
    user = torch.randint(0, 16, (2, 8, 12))
    system = delay_codes(torch.randint(0, 17, (2, 8, 12)), pad_id=16)

    def loss_and_grad(checkpointing: bool, bf16: bool) -> tuple[float, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        model.temporal.gradient_checkpointing = checkpointing
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss(user, system)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        return loss.item(), grads

    plain_loss, plain_grad = loss_and_grad(False, False)
    ckpt_loss, ckpt_grad = loss_and_grad(True, False)
    assert ckpt_loss == plain_loss
    torch.testing.assert_close(ckpt_grad, plain_grad, atol=1e-7, rtol=1e-5)
    bf16_loss, bf16_grad = loss_and_grad(True, True)
    model.temporal.gradient_checkpointing = False
    assert abs(bf16_loss - plain_loss) < 0.02 * plain_loss
    assert torch.nn.functional.cosine_similarity(bf16_grad, plain_grad, dim=0) > 0.99


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "ckpt")
    loaded = S2SModel.from_pretrained(tmp_path / "ckpt")
    user = torch.randint(0, 16, (1, 8, 5))
    assert torch.equal(stream(model, user, Sampling()), stream(loaded, user, Sampling()))
    with pytest.raises(FileNotFoundError, match="model.pt"):
        S2SModel.from_pretrained(tmp_path / "nowhere")
