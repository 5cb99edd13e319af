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
    - ``max_sessions``: concurrent connections; one more gets ``too_many_sessions`` (close code 1013).
    - ``send_queue_frames``: output frames buffered for a client; when the queue stays full for ``send_timeout_s``
      (the client does not read), the session is closed with ``backpressure``.
    """

    max_frame_bytes: int = 1 << 20
    max_session_s: float = 300.0
    max_sessions: int = 64
    send_queue_frames: int = 256
    send_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        for name in (
            "max_frame_bytes",
            "max_session_s",
            "max_sessions",
            "send_queue_frames",
            "send_timeout_s",
        ):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"Expected server limit `{name}` to be > 0 but got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)
