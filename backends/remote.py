"""``remote``: any server speaking the ``s2s-ws/1`` WebSocket protocol (``docs/protocol.md``), e.g. ``s2s-bench serve``.

Every suite can run against a server this way, and the harness then measures TTFA *including* the network hop:
the runner's clock stamps audio as this backend hands it out, after it crossed the socket. One WebSocket
connection per session; a background thread receives the server's frames into a queue that ``poll`` reads.
``load()`` asks the server's ``/health`` for the sample rates, so nothing needs to be declared twice.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from harness.backend import (
    Backend,
    BackendError,
    Option,
    OptionError,
    OutputChunk,
    OutputQueue,
    Session,
    redact_url,
)
from harness.hookspecs import hookimpl
from harness.server import protocol as P

SERVED_PATH = "/ws"
"""Where ``s2s-bench serve`` speaks the protocol (its ``/health`` says so as ``ws_path``)."""


def check_url(ws_url: str) -> None:
    """A usage error (before anything runs) unless ``ws_url`` is a ``ws://`` or ``wss://`` address with a host."""
    parts = urlsplit(ws_url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        hint = ""
        if parts.scheme in ("http", "https"):
            hint = (
                f" (the WebSocket address of a server on {parts.netloc} is ws://{parts.netloc}{SERVED_PATH})"
            )
        raise OptionError(
            "Expected option `url` of backend `remote` to start with ws:// or wss:// (ws://HOST:PORT/PATH) but got "
            f"{redact_url(ws_url)!r}{hint}"
        )


def _health_url(ws_url: str) -> str:
    check_url(ws_url)
    parts = urlsplit(ws_url)
    return urlunsplit(("https" if parts.scheme == "wss" else "http", parts.netloc, "/health", "", ""))


class RemoteBackend(Backend):
    name = "remote"
    description = "a server speaking the s2s-ws/1 WebSocket protocol (s2s-bench serve); TTFA includes the hop"
    options = {
        "url": Option(str, "ws://127.0.0.1:8765/ws", "WebSocket address of the server"),
        "token": Option(
            str,
            "",
            "bearer token, or env:NAME to read it from an environment variable (shown as *** everywhere)",
            secret=True,
        ),
        "format": Option(str, "pcm16", "audio encoding on the wire", choices=P.FORMATS),
        "connect_timeout_s": Option(float, 10.0, "time allowed to connect and get 'ready' (s)", min=0.1),
    }

    def __init__(self, **opts) -> None:
        super().__init__(**opts)
        check_url(self.opts["url"])  # a wrong scheme is a usage error, not a failure of every utterance
        self.server_info: dict = {}

    def _token(self) -> str:
        token = self.opts["token"]
        if token.startswith("env:"):
            import os

            name = token[4:]
            if name not in os.environ:
                raise BackendError(f"remote: token=env:{name} but the environment variable {name} is not set")
            return os.environ[name]
        return token

    def _headers(self) -> dict[str, str]:
        token = self._token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def load(self) -> None:
        url = _health_url(self.opts["url"])
        request = urllib.request.Request(url, headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=self.opts["connect_timeout_s"]) as resp:
                info = json.loads(resp.read().decode())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise BackendError(
                f"remote: cannot reach the server's health endpoint {url} ({exc}); start it with "
                "`s2s-bench serve --backend SPEC --port N` and pass url=ws://HOST:N/ws"
            ) from None
        if info.get("protocol") != P.PROTOCOL:
            raise BackendError(
                f"remote: the server at {url} speaks {info.get('protocol')!r}, not {P.PROTOCOL!r}"
            )
        served_path = info.get("ws_path")
        path = urlsplit(self.opts["url"]).path or "/"
        if served_path and path != served_path:
            parts = urlsplit(self.opts["url"])
            fixed = urlunsplit((parts.scheme, parts.netloc, served_path, parts.query, ""))
            raise BackendError(
                f"remote: the server at {parts.netloc} serves the protocol at {served_path}, not at {path}: "
                f"use url={redact_url(fixed)}"
            )
        served = info.get("backend", {})
        self.input_sample_rate = int(served.get("input_sample_rate", 16000))
        self.output_sample_rate = int(served.get("output_sample_rate", 16000))
        self.server_info = info

    def warmup(self) -> None:
        """One short turn over the wire, so connection set-up costs are not measured."""
        session = self.open_session()
        try:
            t = np.arange(int(0.2 * self.input_sample_rate)) / self.input_sample_rate
            session.push((0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
            session.end_input()
            for _ in range(200):
                session.poll(0.05)
                if session.done:
                    break
        finally:
            session.close()

    @property
    def latency_only(self) -> bool:
        return bool(self.server_info.get("backend", {}).get("latency_only", False))

    def describe(self) -> dict:
        out = super().describe()  # redacts the token (a secret option) and credentials in the URL
        out["served_backend"] = self.server_info.get("backend")
        return out

    def open_session(self) -> Session:
        return _RemoteSession(self)


def _connect_hint(exc: Exception) -> str:
    """The connection error, plus what to do when the server refused the path (HTTP 403/404 on the upgrade)."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (403, 404):
        return (
            f"the server answered HTTP {status} to the WebSocket upgrade: nothing speaks the protocol at that path "
            f"(`s2s-bench serve` serves it at {SERVED_PATH}: url=ws://HOST:PORT{SERVED_PATH})"
        )
    return str(exc)


class _RemoteSession(Session):
    """One turn over one WebSocket connection; a daemon thread turns the server's frames into queue items."""

    def __init__(self, backend: RemoteBackend) -> None:
        try:
            from websockets.sync.client import connect
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                "websockets is needed by the `remote` backend; install the extra: pip install 's2s-bench[serve]'"
            ) from None
        o = backend.opts
        self.fmt = o["format"]
        self.session_id = uuid.uuid4().hex[:12]
        self.output = OutputQueue()
        self._closed = False
        try:
            self.ws = connect(
                o["url"],
                additional_headers=backend._headers(),
                open_timeout=o["connect_timeout_s"],
                compression=None,
                max_size=None,
            ).__enter__()  # entering marks a directly held connection as intended (websockets >= 17.1)
        except Exception as exc:
            raise BackendError(
                f"remote: cannot connect to {redact_url(o['url'])}: {_connect_hint(exc)}"
            ) from None
        try:
            self.ws.send(json.dumps(P.start_message(backend.input_sample_rate, self.fmt, self.session_id)))
            reply = self.ws.recv(timeout=o["connect_timeout_s"])
        except Exception as exc:
            self.ws.close()
            raise BackendError(f"remote: no 'ready' from {redact_url(o['url'])}: {exc}") from None
        msg = json.loads(reply) if isinstance(reply, str) else {}
        if msg.get("type") != P.READY:
            self.ws.close()
            raise BackendError(
                f"remote: the server refused the session: {msg.get('code')}: {msg.get('message')}"
            )
        self._thread = threading.Thread(target=self._receive, name="remote-session-recv", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for frame in self.ws:
                if isinstance(frame, bytes):
                    self.output.put(OutputChunk(audio=P.decode_audio(frame, self.fmt)))
                    continue
                msg = json.loads(frame)
                kind = msg.get("type")
                if kind == P.MARK:
                    self.output.put(OutputChunk(marks=(msg["name"],), text=msg.get("text")))
                elif kind == P.TEXT:
                    self.output.put(OutputChunk(text=msg.get("text")))
                elif kind == P.DONE:
                    self.output.finish()
                    return
                elif kind == P.ERROR:
                    self.output.fail(
                        BackendError(f"remote server error {msg.get('code')}: {msg.get('message')}")
                    )
                    return
            self.output.fail(BackendError("remote: the server closed the connection before 'done'"))
        except ConnectionClosed as exc:
            if not self._closed:
                self.output.fail(BackendError(f"remote: connection lost before 'done' ({exc})"))
        except Exception as exc:  # a malformed frame from the server
            self.output.fail(BackendError(f"remote: bad frame from the server: {type(exc).__name__}: {exc}"))

    def push(self, pcm: np.ndarray) -> None:
        self.ws.send(P.encode_audio(pcm, self.fmt))

    def end_input(self) -> None:
        self.ws.send(json.dumps({"type": P.END_OF_TURN}))

    def poll(self, timeout: float = 0.0) -> OutputChunk | None:
        return self.output.poll(timeout)

    @property
    def done(self) -> bool:
        return self.output.done

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.output.done:
                self.ws.send(json.dumps({"type": P.CLOSE}))
        except Exception:
            pass
        try:
            self.ws.close()
        except Exception:
            pass


@hookimpl
def register_backends(register):
    register(RemoteBackend)
