"""Shared helpers for the server tests: a raw protocol client and metric polling (the server runs in-process)."""

from __future__ import annotations

import json
import time
import urllib.request

import numpy as np

from harness.server import protocol as P


def speech_like(seconds: float = 1.0, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced, audible test signal (harmonics with an envelope); not speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140.0 + 20 * rng.random()
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))
    env = np.sin(np.pi * t / t[-1]) ** 0.5
    return (0.25 * env * x / np.max(np.abs(x))).astype(np.float32)


def connect(url: str, **kw):
    from websockets.sync.client import connect as ws_connect

    # __enter__ returns the connection itself; it marks a directly held connection as intended (websockets >= 17.1)
    return ws_connect(url, compression=None, max_size=None, open_timeout=10, **kw).__enter__()


def recv_json(ws, timeout: float = 10.0) -> dict:
    while True:
        frame = ws.recv(timeout=timeout)
        if isinstance(frame, str):
            return json.loads(frame)


def expect_error(ws, code: str, close_code: int, timeout: float = 10.0) -> dict:
    """Read until the error frame, check its code, then check the server closes with ``close_code``."""
    from websockets.exceptions import ConnectionClosed

    msg = recv_json(ws, timeout)
    assert msg["type"] == "error", msg
    assert msg["code"] == code, msg
    assert msg["message"]
    try:
        while True:
            ws.recv(timeout=timeout)
    except ConnectionClosed:
        pass
    assert ws.close_code == close_code, (ws.close_code, ws.close_reason)
    return msg


def one_turn(
    url: str, audio: np.ndarray, fmt: str = "f32", chunk: int = 320, **kw
) -> tuple[np.ndarray, list[dict]]:
    """A complete, well-behaved turn; returns the answer audio and the JSON messages received."""
    with connect(url, **kw) as ws:
        ws.send(json.dumps(P.start_message(16000, fmt)))
        ready = recv_json(ws)
        assert ready["type"] == "ready", ready
        for i in range(0, audio.size, chunk):
            ws.send(P.encode_audio(audio[i : i + chunk], fmt))
        ws.send(json.dumps({"type": "end_of_turn"}))
        parts, messages = [], [ready]
        while True:
            frame = ws.recv(timeout=20)
            if isinstance(frame, bytes):
                parts.append(P.decode_audio(frame, fmt))
                continue
            msg = json.loads(frame)
            messages.append(msg)
            if msg["type"] in ("done", "error"):
                break
        ws.send(json.dumps({"type": "close"}))
        messages.append(recv_json(ws))
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), messages


def metrics(http_url: str) -> dict[str, float]:
    from harness.server.metrics import parse_metrics

    with urllib.request.urlopen(http_url + "/metrics", timeout=10) as resp:
        return parse_metrics(resp.read().decode())


def wait_sessions_freed(http_url: str, timeout: float = 10.0) -> dict[str, float]:
    """Poll /metrics until no session or turn is active; fail naming what is still held."""
    deadline = time.monotonic() + timeout
    while True:
        m = metrics(http_url)
        if m["s2s_server_active_sessions"] == 0 and m["s2s_server_active_turns"] == 0:
            return m
        if time.monotonic() > deadline:
            raise AssertionError(
                f"sessions not freed: {m['s2s_server_active_sessions']} sessions, "
                f"{m['s2s_server_active_turns']} turns still active"
            )
        time.sleep(0.05)
