"""What one server lets its clients do: message size, session length, concurrency and the send queue."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ServerLimits:
    """Limits enforced per connection; every breach gets an error frame naming the limit, then a close.

    - ``max_frame_bytes``: largest binary or text frame accepted (bytes). A frame above it gets ``frame_too_large``;
      frames above 4x it are refused by the WebSocket layer itself (close code 1009).
    - ``max_session_s``: longest a turn may run from its ``start`` to its ``done`` (seconds); then
      ``session_time_limit`` (this is what cuts a hung backend).
    - ``max_sessions``: concurrent sessions, a session being a connection that has sent its first ``start``; the
      ``start`` of one more gets ``too_many_sessions`` (close code 1013). Connections that never start are not
      counted (so they cannot lock real clients out); ``start_timeout_s`` closes them.
    - ``start_timeout_s``: time a new connection has to send its first ``start`` (seconds); then
      ``start_timeout`` (close code 4408).
    - ``idle_timeout_s``: time a session may wait between turns for its next ``start``; then ``idle_timeout``.
    - ``max_turn_audio_s`` / ``max_connection_audio_s``: input audio one turn / one connection may send (seconds
      at the input rate), so a client cannot fill the server's memory; then ``audio_limit`` (close code 4413).
    - ``send_queue_frames``: output frames buffered for a client; when the queue stays full for ``send_timeout_s``
      (the client does not read), the session is closed with ``backpressure``.
    """

    max_frame_bytes: int = 1 << 20
    max_session_s: float = 300.0
    max_sessions: int = 64
    start_timeout_s: float = 10.0
    idle_timeout_s: float = 300.0
    max_turn_audio_s: float = 300.0
    max_connection_audio_s: float = 3600.0
    send_queue_frames: int = 256
    send_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        for name in (
            "max_frame_bytes",
            "max_session_s",
            "max_sessions",
            "start_timeout_s",
            "idle_timeout_s",
            "max_turn_audio_s",
            "max_connection_audio_s",
            "send_queue_frames",
            "send_timeout_s",
        ):
            value = getattr(self, name)
            if not value > 0 or value != value or value == float("inf"):
                raise ValueError(
                    f"Expected server limit `{name}` to be a finite number > 0 but got {value!r}"
                )

    def to_dict(self) -> dict:
        return asdict(self)
