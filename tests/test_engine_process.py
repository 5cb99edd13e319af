"""The engine in worker processes (``workers=N``), with a tiny *random* model: the same answers as the engine
thread, whichever worker serves a session and whoever else is connected, and loud failures when a worker dies."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest
import torch
from s2s_fixtures import toy_wave
from test_engine import make_engine, run_engine_sessions, tiny  # noqa: F401 (fixture)

from custom_model.engine import TurnPolicy
from custom_model.engine.process import EngineWorkerError, ProcessEngine

POLICY = dict(end_silence_frames=2, max_answer_frames=12, max_wait_frames=10, force_answer=True, seed=5)


def process_engine(tiny, workers, **kw):  # noqa: F811
    codec, model, _, silence = tiny
    return ProcessEngine(model, codec, silence, workers=workers, optimize="eager", **kw)


@pytest.mark.parametrize("decode_thread", [False, True])
def test_sessions_spread_over_two_workers_get_the_answers_of_the_engine_thread(tiny, decode_thread):  # noqa: F811
    """... with each worker's decode in its own thread too (its events sent from that thread)."""
    audios = [toy_wave(0.3 + 0.1 * i, 200 + 50 * i, i) for i in range(4)]
    thread = make_engine(tiny, temperature=1.0, max_slots=4).start()
    expected = run_engine_sessions(thread, audios, [0.0, 0.03, 0.05, 0.2], POLICY)
    thread.stop()
    engine = process_engine(tiny, 2, temperature=1.0, max_slots=2, decode_thread=decode_thread)
    try:
        assert engine.max_slots == 4 and engine.variant == "eager"
        got = run_engine_sessions(engine, audios, [0.0, 0.03, 0.05, 0.2], POLICY)
        # the sessions really were spread: each worker served some
        assert all(w.proc.is_alive() for w in engine.workers)
    finally:
        engine.stop()
    for a, b in zip(expected, got, strict=True):
        assert a.size == 12 * 320
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_worker_that_dies_fails_its_sessions_loudly_and_the_other_goes_on(tiny):  # noqa: F811
    engine = process_engine(tiny, 2, max_slots=2)
    try:
        events = {0: [], 1: []}
        finished = {0: threading.Event(), 1: threading.Event()}

        def emit_for(i):
            def emit(kind, payload):
                events[i].append((kind, payload))
                if kind in ("done", "error"):
                    finished[i].set()

            return emit

        first = engine.open(TurnPolicy(**POLICY), emit_for(0))
        second = engine.open(TurnPolicy(**POLICY), emit_for(1))
        assert first.worker is not second.worker  # the least busy worker takes the next session
        os.kill(first.worker.proc.pid, signal.SIGKILL)
        assert finished[0].wait(30)
        kind, payload = events[0][-1]
        assert kind == "error" and isinstance(payload, EngineWorkerError)
        assert "engine worker 0 went away" in str(payload) and "exit code -9" in str(payload)
        second.push(toy_wave(0.3, 220, 0))
        second.end_input()
        assert finished[1].wait(30)
        assert [k for k, _ in events[1]][-1] == "done"
        assert sum(p.size for k, p in events[1] if k == "audio") == 12 * 320
        third = engine.open(TurnPolicy(**POLICY), lambda *_: None)  # new sessions avoid the dead worker
        assert third.worker is second.worker
        assert engine.error is None  # one worker still serves
    finally:
        engine.stop()


def test_a_worker_that_cannot_build_its_engine_says_why(tiny):  # noqa: F811
    codec, model, _, silence = tiny
    with pytest.raises(EngineWorkerError, match="could not build its engine") as info:
        ProcessEngine(model, codec, silence, workers=1, optimize="fp16")  # GPU only
    assert "fp16" in str(info.value)


def test_the_custom_backend_serves_from_worker_processes(tmp_path):
    from harness.registry import create_backend

    torch.manual_seed(0)
    spec = "custom:weights=random,preset=tiny,optimize=eager,random_answer_s=0.2,workers=2"
    backend = create_backend(spec)
    backend.load()
    try:
        assert backend.describe()["engine"]["workers"] == 2
        answers = []
        for k in range(3):
            session = backend.open_session()
            session.push(toy_wave(0.3, 200 + 40 * k, k))
            session.end_input()
            audio, marks = [], []
            while not session.done:
                chunk = session.poll(0.5)
                if chunk is not None:
                    marks += chunk.marks
                    if chunk.audio is not None:
                        audio.append(chunk.audio)
            session.close()
            answers.append(np.concatenate(audio))
            assert "first_audio" in marks
        assert all(a.size == 10 * 320 for a in answers)
    finally:
        backend.shutdown()
