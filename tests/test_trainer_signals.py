"""Stop signals in the distributed trainer: a SIGTERM is never lost, and every rank stops at the same step.

The race this guards: ``should_stop`` all-reduces a flag built from ``stop_requested``; a signal whose handler runs
while the collective is in flight (one rank often waits there for a slower one) used to be overwritten by the
agreed "no" of that step, so a SIGTERM to one rank was silently dropped and the job never stopped (seen in CI: the
2-process SIGTERM test timed out). No process group here: the collective is replaced by one that lets the signal
land mid-flight, which is the timing the race needs.
"""

from __future__ import annotations

import os
import signal

import pytest

torch = pytest.importorskip("torch")

from custom_model import trainer as trainer_mod  # noqa: E402


@pytest.fixture
def trainer(tmp_path):
    t = trainer_mod.Trainer(trainer_mod.TrainerConfig(out_dir=str(tmp_path), tensorboard=False))
    yield t
    t.close()


def test_a_signal_during_the_stop_all_reduce_is_kept_for_the_next_step(trainer, monkeypatch):
    calls = []

    def all_reduce_with_a_signal_in_flight(flag):  # world of one: the sum is the flag itself
        calls.append(float(flag.item()))
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the collective "returns"

    monkeypatch.setattr(trainer, "distributed", True)
    monkeypatch.setattr(trainer_mod.dist, "all_reduce", all_reduce_with_a_signal_in_flight)
    # This step's agreed answer is "go on": the other ranks sent 0 and must not stop one step earlier than this rank.
    assert trainer.should_stop() is False
    assert trainer.stop_requested  # ... but the signal is not forgotten
    assert trainer.should_stop() is True  # the next step every rank agrees to stop
    assert calls == [0.0, 1.0]


def test_agreement_is_what_every_rank_returns(trainer, monkeypatch):
    def another_rank_was_signalled(flag):
        flag.fill_(1.0)

    monkeypatch.setattr(trainer, "distributed", True)
    monkeypatch.setattr(trainer_mod.dist, "all_reduce", another_rank_was_signalled)
    assert trainer.should_stop() is True and trainer.stop_requested
