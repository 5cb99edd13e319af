"""The server serving loopback in-process on 127.0.0.1: normal turns, endpoints, concurrency, auth, limits.

Each module-scoped fixture starts a uvicorn server in a thread on a free 127.0.0.1 port and stops it afterwards.
"""

import json
import threading
import urllib.request

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


@pytest.fixture(scope="module")
def server():
    with ServerThread(load_backend("loopback:trim=false"), ServerLimits(max_sessions=6)) as srv:
        yield srv


@pytest.fixture(scope="module")
def token_server():
    with ServerThread(load_backend("loopback"), token="s3cret") as srv:
        yield srv


def test_echo_is_exact_in_f32_and_within_one_lsb_in_pcm16(server):
    x = speech_like(0.8)
    y, messages = one_turn(server.url, x, "f32")
    assert np.array_equal(y, x)
    assert [m["type"] for m in messages] == ["ready", "done", "closed"]
    assert messages[0]["protocol"] == "s2s-ws/1" and messages[0]["output_sample_rate"] == 16000
    y16, _ = one_turn(server.url, x, "pcm16")
    assert y16.size == x.size and np.max(np.abs(y16 - x)) <= 1.0 / 32767 + 1e-7


def test_health_and_metrics(server):
    with urllib.request.urlopen(server.http_url + "/health", timeout=5) as resp:
        info = json.loads(resp.read())
    assert info["status"] == "ok" and info["protocol"] == "s2s-ws/1"
    assert info["backend"]["name"] == "loopback"
    before = metrics(server.http_url)
    one_turn(server.url, speech_like(0.3))
    after = wait_sessions_freed(server.http_url)
    assert after["s2s_server_sessions_total"] == before["s2s_server_sessions_total"] + 1
    assert after['s2s_server_turns_total{status="ok"}'] == before['s2s_server_turns_total{status="ok"}'] + 1
    assert after["s2s_server_ttfa_seconds_count"] == before["s2s_server_ttfa_seconds_count"] + 1
    assert after["s2s_server_audio_in_seconds_total"] > before["s2s_server_audio_in_seconds_total"]


def test_several_turns_on_one_connection(server):
    with connect(server.url) as ws:
        for seconds in (0.3, 0.5):
            x = speech_like(seconds)
            ws.send(json.dumps(P.start_message(16000, "f32", f"turn-{seconds}")))
            assert recv_json(ws)["session_id"] == f"turn-{seconds}"
            ws.send(P.encode_audio(x, "f32"))
            ws.send(json.dumps({"type": "end_of_turn"}))
            got = []
            while True:
                frame = ws.recv(timeout=10)
                if isinstance(frame, bytes):
                    got.append(P.decode_audio(frame, "f32"))
                elif json.loads(frame)["type"] == "done":
                    break
            assert np.array_equal(np.concatenate(got), x)
        ws.send(json.dumps({"type": "close"}))
        assert recv_json(ws)["type"] == "closed"


def test_concurrent_sessions_each_get_their_own_answer(server):
    inputs = [speech_like(0.4 + 0.1 * i, seed=i) for i in range(5)]
    results: dict[int, np.ndarray] = {}

    def worker(i: int) -> None:
        results[i] = one_turn(server.url, inputs[i])[0]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == list(range(5))
    for i, x in enumerate(inputs):
        assert np.array_equal(results[i], x), f"session {i} got someone else's audio"
    wait_sessions_freed(server.http_url)


def test_too_many_sessions_is_refused_then_served_again(server):
    held = [connect(server.url) for _ in range(6)]
    try:
        for ws in held:  # a connection counts as a session from its first 'start'
            ws.send(json.dumps(P.start_message(16000, "f32")))
            assert recv_json(ws)["type"] == "ready"
        assert metrics(server.http_url)["s2s_server_active_sessions"] == 6
        with connect(server.url) as ws:
            ws.send(json.dumps(P.start_message(16000, "f32")))
            msg = expect_error(ws, "too_many_sessions", P.CLOSE_TRY_LATER)
            assert "6 sessions" in msg["message"]
    finally:
        for ws in held:
            ws.close()
    wait_sessions_freed(server.http_url)
    assert one_turn(server.url, speech_like(0.2))[0].size > 0


def test_bad_token_is_refused_and_good_token_works(token_server):
    with connect(token_server.url) as ws:
        expect_error(ws, "unauthorized", P.CLOSE_POLICY)
    with connect(token_server.url, additional_headers={"Authorization": "Bearer wrong"}) as ws:
        expect_error(ws, "unauthorized", P.CLOSE_POLICY)
    x = speech_like(0.3)
    y, _ = one_turn(token_server.url, x, additional_headers={"Authorization": "Bearer s3cret"})
    assert y.size > 0
    y, _ = one_turn(token_server.url + "?token=s3cret", x)
    assert y.size > 0
    m = wait_sessions_freed(token_server.http_url)
    assert m['s2s_server_errors_total{kind="unauthorized"}'] == 2


def test_demo_page_is_served(server):
    with urllib.request.urlopen(server.http_url + "/", timeout=5) as resp:
        html = resp.read().decode()
    assert "s2s-ws/1" in html
    with urllib.request.urlopen(server.http_url + "/static/demo.js", timeout=5) as resp:
        assert "getUserMedia" in resp.read().decode()


def test_clean_close_between_turns_is_not_an_error(server):
    def disconnects() -> float:
        return metrics(server.http_url).get('s2s_server_errors_total{kind="client_disconnect"}', 0.0)

    before = disconnects()
    one_turn(server.url, speech_like(0.2))  # ends with the protocol's close
    with connect(server.url) as ws:  # a plain WebSocket close (1000) before any turn
        ws.send(json.dumps(P.start_message(16000, "f32")))
        recv_json(ws)
        ws.send(P.encode_audio(speech_like(0.2), "f32"))
        ws.send(json.dumps({"type": "end_of_turn"}))
        while not (isinstance(msg := ws.recv(timeout=10), str) and json.loads(msg)["type"] == "done"):
            pass
    wait_sessions_freed(server.http_url)
    assert disconnects() == before
