"""Misbehaving clients and backends: each gets a clear error frame or a clean close, the session is freed (the
/metrics gauges return to 0), and the same server then still answers a normal session."""

import json
import socket
import time

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

LIMITS = ServerLimits(max_frame_bytes=64 * 1024, max_session_s=30, send_queue_frames=4, send_timeout_s=0.5)
HANG_LIMITS = ServerLimits(max_session_s=1.5)


@pytest.fixture(scope="module")
def server():
    # every 2nd session of the crash/hang servers misbehaves; this one only misbehaves through its clients
    with ServerThread(load_backend("loopback"), LIMITS) as srv:
        yield srv


def still_serves(srv) -> None:
    m = wait_sessions_freed(srv.http_url)
    x = speech_like(0.3)
    y, messages = one_turn(srv.url, x)
    assert messages[-2]["type"] == "done" and y.size > 0
    assert m["s2s_server_active_sessions"] == 0


def error_count(srv, kind: str) -> float:
    return metrics(srv.http_url).get(f's2s_server_errors_total{{kind="{kind}"}}', 0.0)


def test_malformed_json(server):
    with connect(server.url) as ws:
        ws.send("{'type': 'start'")
        msg = expect_error(ws, "bad_json", P.CLOSE_PROTOCOL_ERROR)
        assert "not valid JSON" in msg["message"]
    assert error_count(server, "bad_json") >= 1
    still_serves(server)


def test_binary_before_start(server):
    with connect(server.url) as ws:
        ws.send(P.encode_audio(speech_like(0.1), "pcm16"))
        msg = expect_error(ws, "not_started", P.CLOSE_PROTOCOL_ERROR)
        assert "before a 'start'" in msg["message"]
    still_serves(server)


def test_oversize_frame(server):
    with connect(server.url) as ws:
        ws.send(json.dumps(P.start_message(16000, "f32")))
        assert recv_json(ws)["type"] == "ready"
        ws.send(np.zeros(LIMITS.max_frame_bytes // 4 + 1000, "<f4").tobytes())
        msg = expect_error(ws, "frame_too_large", P.CLOSE_TOO_BIG)
        assert f"max_frame_bytes={LIMITS.max_frame_bytes}" in msg["message"]
    still_serves(server)


def test_wrong_sample_rate(server):
    with connect(server.url) as ws:
        ws.send(json.dumps(P.start_message(44100, "pcm16")))
        msg = expect_error(ws, "bad_sample_rate", P.CLOSE_PROTOCOL_ERROR)
        assert "16000" in msg["message"] and "44100" in msg["message"]
    still_serves(server)


def test_client_that_never_reads_is_closed(server):
    """A long answer to a client with a tiny receive buffer that never reads: bounded queue, then a close."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    before = error_count(server, "backpressure")
    with connect(server.url, sock=sock, close_timeout=1) as ws:
        ws.send(json.dumps(P.start_message(16000, "f32")))
        assert recv_json(ws)["type"] == "ready"
        x = np.tile(speech_like(1.0), 60)  # 60 s of audio: ~3.8 MB of answer, far beyond socket buffers
        for i in range(0, x.size, 16000):
            ws.send(P.encode_audio(x[i : i + 16000], "f32"))
        ws.send(json.dumps({"type": "end_of_turn"}))
        deadline = time.monotonic() + 15
        while error_count(server, "backpressure") == before:
            assert time.monotonic() < deadline, "the server never gave up on a client that does not read"
            time.sleep(0.05)
    still_serves(server)


def test_client_disconnects_mid_turn(server):
    before = error_count(server, "client_disconnect")
    ws = connect(server.url)
    ws.send(json.dumps(P.start_message(16000, "pcm16")))
    assert recv_json(ws)["type"] == "ready"
    ws.send(P.encode_audio(speech_like(0.5), "pcm16"))
    ws.socket.close()  # gone without a close frame, mid-turn
    still_serves(server)
    assert error_count(server, "client_disconnect") == before + 1


def test_backend_crash_gets_an_error_frame():
    with ServerThread(load_backend("loopback:fail=crash,every=2"), LIMITS) as srv:
        still_serves(srv)  # session 1 behaves
        with connect(srv.url) as ws:  # session 2 crashes
            ws.send(json.dumps(P.start_message(16000, "f32")))
            recv_json(ws)
            ws.send(P.encode_audio(speech_like(0.3), "f32"))
            ws.send(json.dumps({"type": "end_of_turn"}))
            msg = expect_error(ws, "backend_error", P.CLOSE_INTERNAL)
            assert "planned crash" in msg["message"]
        still_serves(srv)  # session 3 behaves
        assert error_count(srv, "backend_error") == 1


def test_hanging_backend_is_cut_by_the_session_time_limit():
    with ServerThread(load_backend("loopback:fail=hang,every=2"), HANG_LIMITS) as srv:
        still_serves(srv)
        with connect(srv.url) as ws:
            ws.send(json.dumps(P.start_message(16000, "f32")))
            recv_json(ws)
            ws.send(P.encode_audio(speech_like(0.3), "f32"))
            ws.send(json.dumps({"type": "end_of_turn"}))
            msg = expect_error(ws, "session_time_limit", P.CLOSE_TIME_LIMIT)
            assert "max_session_s=1.5" in msg["message"]
        still_serves(srv)


def test_messages_out_of_order(server):
    with connect(server.url) as ws:
        ws.send(json.dumps({"type": "end_of_turn"}))
        expect_error(ws, "not_started", P.CLOSE_PROTOCOL_ERROR)
    with connect(server.url) as ws:
        ws.send(json.dumps(P.start_message(16000, "pcm16")))
        recv_json(ws)
        ws.send(b"\x00\x01\x02")
        expect_error(ws, "bad_frame", P.CLOSE_PROTOCOL_ERROR)
    still_serves(server)
