"""The server's limits against hostile clients: audio per turn and per connection is bounded, a session's memory is
freed when it ends (without waiting for the garbage collector), and idle connections cannot lock real clients out."""

from __future__ import annotations

import gc
import json
import time
import weakref

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("websockets")

from harness.server import protocol as P  # noqa: E402
from harness.server.limits import ServerLimits  # noqa: E402
from harness.server.serving import ServerThread, load_backend  # noqa: E402
from tests.server_helpers import (  # noqa: E402
    connect,
    expect_error,
    metrics,
    one_turn,
    recv_json,
    speech_like,
    wait_sessions_freed,
)

LIMITS = ServerLimits(
    max_sessions=2, start_timeout_s=0.6, idle_timeout_s=0.6, max_turn_audio_s=1.0, max_connection_audio_s=1.5
)


@pytest.fixture(scope="module")
def server():
    backend = load_backend("loopback")
    opened: list[weakref.ref] = []
    real_open = backend.open_session

    def open_and_watch():
        session = real_open()
        opened.append(weakref.ref(session))
        return session

    backend.open_session = open_and_watch
    with ServerThread(backend, LIMITS) as srv:
        srv.opened = opened
        yield srv


def start(ws) -> None:
    ws.send(json.dumps(P.start_message(16000, "pcm16")))
    assert recv_json(ws)["type"] == "ready"


def send_audio(ws, seconds: float) -> None:
    x = speech_like(seconds)
    for i in range(0, x.size, 16000):
        ws.send(P.encode_audio(x[i : i + 16000], "pcm16"))


def test_a_turn_cannot_send_more_audio_than_its_limit(server):
    with connect(server.url) as ws:
        start(ws)
        send_audio(ws, 2.0)
        msg = expect_error(ws, "audio_limit", P.CLOSE_AUDIO_LIMIT)
        assert "max_turn_audio_s=1" in msg["message"]
    assert one_turn(server.url, speech_like(0.3), fmt="pcm16")[0].size > 0


def test_a_connection_cannot_send_more_audio_than_its_limit_over_several_turns(server):
    with connect(server.url) as ws:
        start(ws)
        send_audio(ws, 0.9)
        ws.send(json.dumps({"type": "end_of_turn"}))
        while recv_json(ws)["type"] != "done":
            pass
        start(ws)
        send_audio(ws, 0.9)
        msg = expect_error(ws, "audio_limit", P.CLOSE_AUDIO_LIMIT)
        assert "max_connection_audio_s=1.5" in msg["message"]
    wait_sessions_freed(server.http_url)


def test_a_session_dropped_mid_turn_is_freed_at_once(server):
    """Before: the turn's session (and every sample pushed to it) lived on in reference cycles until a gc."""
    gc.collect()
    gc.disable()
    try:
        before = len(server.opened)
        ws = connect(server.url)
        start(ws)
        send_audio(ws, 0.8)
        ws.close()  # gone mid-turn, without end_of_turn
        wait_sessions_freed(server.http_url)
        deadline = time.monotonic() + 5
        while server.opened[before]() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.opened[before]() is None, "the session of a finished turn is still alive"
    finally:
        gc.enable()


def test_idle_connections_never_lock_real_clients_out(server):
    idle = [connect(server.url) for _ in range(4)]  # twice max_sessions, none sends 'start'
    try:
        y, messages = one_turn(server.url, speech_like(0.3), fmt="pcm16")
        assert messages[-2]["type"] == "done" and y.size > 0
        for ws in idle:  # and the start timeout closes them
            msg = expect_error(ws, "start_timeout", P.CLOSE_TIME_LIMIT)
            assert "start_timeout_s=0.6" in msg["message"]
    finally:
        for ws in idle:
            ws.close()
    m = wait_sessions_freed(server.http_url)
    assert m['s2s_server_errors_total{kind="start_timeout"}'] >= 4


def test_a_started_session_idle_between_turns_is_closed(server):
    with connect(server.url) as ws:
        start(ws)
        ws.send(json.dumps({"type": "end_of_turn"}))
        while recv_json(ws)["type"] != "done":
            pass
        assert metrics(server.http_url)["s2s_server_active_sessions"] == 1
        expect_error(ws, "idle_timeout", P.CLOSE_TIME_LIMIT)
    wait_sessions_freed(server.http_url)


def test_limits_must_be_finite_and_positive():
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="start_timeout_s"):
            ServerLimits(start_timeout_s=bad)
    assert np.isfinite(ServerLimits().max_turn_audio_s)
