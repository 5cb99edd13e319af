"""Load a backend once and run the server: in the foreground (``s2s-bench serve``) or in a background thread
(tests and the load suite, which start a server on 127.0.0.1 and stop it when done)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from ..backend import Backend, BackendSpec
from .limits import ServerLimits

LOCALHOST = "127.0.0.1"


def load_backend(spec: str | BackendSpec, warmup: bool = True) -> Backend:
    """Create, load and (optionally) warm up the backend to serve; once per server."""
    from ..registry import create_backend

    backend = create_backend(spec)
    backend.load()
    if warmup:
        backend.warmup()
    return backend


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket with Nagle's algorithm off.

    Small audio frames must leave at once: with Nagle on, a frame waits for the ACK of the previous one, and the
    client's delayed ACK turns that into ~40 ms gaps (measured: stalls in every answer). asyncio only disables
    Nagle itself for sockets created with ``proto=IPPROTO_TCP``; accepted sockets inherit the option on Linux.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: Any, host: str, port: int, limits: ServerLimits, log_level: str):
    try:
        import uvicorn
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "uvicorn is needed to run the server; install the extra: pip install 's2s-bench[serve]'"
        ) from None
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        ws="websockets-sansio",
        ws_max_size=4 * limits.max_frame_bytes,
        ws_per_message_deflate=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        lifespan="off",
    )


class ServerThread:
    """A uvicorn server for ``backend`` on ``127.0.0.1`` (a free port unless ``port`` is given), in a thread.

    Use as a context manager: the server is up (``/health`` answers) on entry and stopped on exit. ``url`` is the
    WebSocket address for the ``remote`` backend, ``http_url`` the page and endpoints.
    """

    def __init__(
        self,
        backend: Backend,
        limits: ServerLimits | None = None,
        token: str | None = None,
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        import uvicorn

        from .app import create_app

        self.limits = limits or ServerLimits()
        self.app = create_app(backend, self.limits, token)
        self.sock = bind_socket(LOCALHOST, port)
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(_uvicorn_config(self.app, LOCALHOST, self.port, self.limits, log_level))
        self.server.install_signal_handlers = lambda: None  # not the main thread
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://{LOCALHOST}:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def metrics(self):
        return self.app.state.s2s.metrics

    def start(self, timeout_s: float = 20.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.http_url} did not start within {timeout_s:g} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout_s)
        self.sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
