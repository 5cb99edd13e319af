"""The ``s2s-ws/1`` WebSocket protocol: message names, audio encodings and validation (no server imports).

Shared by the server (:mod:`harness.server.app`) and the ``remote`` backend, so both sides agree by construction.
The full description, with examples, is ``docs/protocol.md``.

Audio travels in binary frames: mono, little-endian, at the sample rate declared in ``start``; ``pcm16`` is signed
16-bit integers (full scale 32767), ``f32`` is IEEE float32 in [-1, 1]. Everything else is a JSON text frame with a
``type`` field.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

PROTOCOL = "s2s-ws/1"
FORMATS = ("pcm16", "f32")
BYTES_PER_SAMPLE = {"pcm16": 2, "f32": 4}

# Client -> server message types.
START, END_OF_TURN, CLOSE = "start", "end_of_turn", "close"
# Server -> client message types.
READY, MARK, TEXT, DONE, ERROR, CLOSED = "ready", "mark", "text", "done", "error", "closed"

# WebSocket close codes used by the server (RFC 6455 plus the private 4000-4999 range).
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_POLICY = 1008  # bad token
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011  # the backend crashed
CLOSE_TRY_LATER = 1013  # too many sessions
CLOSE_TIME_LIMIT = 4408  # session length limit reached, or no 'start' in time
CLOSE_AUDIO_LIMIT = 4413  # more input audio than a turn or a connection may send
CLOSE_BACKPRESSURE = 4429  # the client does not read its answer

ERROR_CLOSE_CODES = {
    "unauthorized": CLOSE_POLICY,
    "too_many_sessions": CLOSE_TRY_LATER,
    "bad_json": CLOSE_PROTOCOL_ERROR,
    "bad_message": CLOSE_PROTOCOL_ERROR,
    "unsupported_protocol": CLOSE_PROTOCOL_ERROR,
    "not_started": CLOSE_PROTOCOL_ERROR,
    "bad_sample_rate": CLOSE_PROTOCOL_ERROR,
    "bad_format": CLOSE_PROTOCOL_ERROR,
    "bad_option": CLOSE_PROTOCOL_ERROR,
    "bad_frame": CLOSE_PROTOCOL_ERROR,
    "bad_audio": CLOSE_PROTOCOL_ERROR,
    "frame_too_large": CLOSE_TOO_BIG,
    "session_time_limit": CLOSE_TIME_LIMIT,
    "start_timeout": CLOSE_TIME_LIMIT,
    "idle_timeout": CLOSE_TIME_LIMIT,
    "audio_limit": CLOSE_AUDIO_LIMIT,
    "backpressure": CLOSE_BACKPRESSURE,
    "backend_error": CLOSE_INTERNAL,
}
"""Every error ``code`` the server sends, and the WebSocket close code that follows it."""


class ProtocolError(Exception):
    """A message broke the protocol; ``code`` is one of :data:`ERROR_CLOSE_CODES`."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_CLOSE_CODES:
            raise ValueError(f"unknown protocol error code {code!r}")
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")

    @property
    def close_code(self) -> int:
        return ERROR_CLOSE_CODES[self.code]

    def to_message(self) -> dict[str, Any]:
        return {"type": ERROR, "code": self.code, "message": self.message}


def encode_audio(pcm: np.ndarray, fmt: str) -> bytes:
    """Float32 mono samples -> the bytes of one binary frame in ``fmt`` (pcm16 clips to [-1, 1])."""
    x = np.asarray(pcm, dtype=np.float32).reshape(-1)
    if fmt == "f32":
        return x.astype("<f4", copy=False).tobytes()
    if fmt == "pcm16":
        return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    raise ProtocolError("bad_format", f"Expected format to be one of {', '.join(FORMATS)} but got {fmt!r}")


def decode_audio(data: bytes, fmt: str) -> np.ndarray:
    """The bytes of one binary frame -> float32 mono samples; raises :class:`ProtocolError` on bad frames."""
    width = BYTES_PER_SAMPLE[fmt]
    if len(data) % width:
        raise ProtocolError(
            "bad_frame",
            f"a {fmt} frame must hold a whole number of {width}-byte samples but has {len(data)} bytes",
        )
    if fmt == "pcm16":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32767.0
    x = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise ProtocolError("bad_audio", f"f32 frame holds {int(np.sum(~np.isfinite(x)))} NaN/inf samples")
    return x


def parse_message(text: str) -> dict[str, Any]:
    """Parse one JSON text frame into a dict with a string ``type``."""
    try:
        msg = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            "bad_json",
            f"text frame is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}): {text[:80]!r}",
        ) from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError(
            "bad_message", f"expected a JSON object with a string 'type' but got {text[:80]!r}"
        )
    return msg


def start_message(
    sample_rate: int, fmt: str = "pcm16", session_id: str | None = None, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The client's first message of a turn."""
    msg: dict[str, Any] = {
        "type": START,
        "protocol": PROTOCOL,
        "sample_rate": int(sample_rate),
        "format": fmt,
    }
    if session_id is not None:
        msg["session_id"] = session_id
    if options:
        msg["options"] = dict(options)
    return msg


def validate_start(
    msg: dict[str, Any], input_sample_rate: int, served_options: dict[str, Any]
) -> tuple[str, str]:
    """Check a ``start`` message against the served backend; return ``(format, session_id)``.

    Per-turn ``options`` may only restate the served backend's options (the server loads one backend once); any
    other value is refused with ``bad_option`` naming the option.
    """
    if msg.get("protocol") != PROTOCOL:
        raise ProtocolError(
            "unsupported_protocol", f"Expected protocol {PROTOCOL!r} but got {msg.get('protocol')!r}"
        )
    fmt = msg.get("format", "pcm16")
    if fmt not in FORMATS:
        raise ProtocolError(
            "bad_format", f"Expected format to be one of {', '.join(FORMATS)} but got {fmt!r}"
        )
    rate = msg.get("sample_rate")
    if not isinstance(rate, int) or isinstance(rate, bool) or rate != input_sample_rate:
        raise ProtocolError(
            "bad_sample_rate",
            f"Expected sample_rate to be {input_sample_rate} (the served backend's input rate) but got {rate!r}; "
            "resample on the client",
        )
    options = msg.get("options") or {}
    if not isinstance(options, dict):
        raise ProtocolError("bad_option", f"Expected options to be a JSON object but got {options!r}")
    for key, value in options.items():
        if key not in served_options:
            known = ", ".join(sorted(served_options)) or "(none)"
            raise ProtocolError(
                "bad_option", f"Unknown option {key!r} for the served backend; known: {known}"
            )
        if str(value) != str(served_options[key]):
            raise ProtocolError(
                "bad_option",
                f"Option {key!r} is {served_options[key]!r} on this server and cannot be changed per session "
                f"(asked for {value!r}); start another server with that option",
            )
    session_id = msg.get("session_id")
    if session_id is not None and not isinstance(session_id, str):
        raise ProtocolError("bad_message", f"Expected session_id to be a string but got {session_id!r}")
    return fmt, session_id or ""
