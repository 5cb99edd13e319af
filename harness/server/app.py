"""The FastAPI application: one loaded backend served to many concurrent WebSocket sessions.

Endpoints: ``GET /`` (the browser demo), ``GET /health`` (liveness plus what is served), ``GET /metrics``
(Prometheus text, see :mod:`harness.server.metrics`) and ``WS /ws`` (the ``s2s-ws/1`` protocol, ``docs/protocol.md``).

Each connection has one reader task (it validates frames and fills a bounded inbox) and carries turns one after
another; each turn owns a fresh ``backend.open_session()`` driven from a worker thread (:mod:`.driver`).
"""

import asyncio
import contextlib
import hmac
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import first_audible_sample
from ..backend import Backend, OutputChunk
from . import protocol as P
from .driver import Failed, Finished, SessionDriver
from .limits import ServerLimits
from .metrics import ServerMetrics

STATIC_DIR = Path(__file__).parent / "static"
WS_PATH = "/ws"
"""The one path that speaks the protocol (``/health`` says so, and the ``remote`` backend checks it)."""
_INBOX_MESSAGES = 64
_AUDIBLE_SEARCH_S = 30.0


@dataclass
class _Gone:
    """The client disconnected (or closed without the protocol's ``close`` message)."""

    code: int | None = None


class _ClientGone(Exception):
    pass


@dataclass
class _Connection:
    """One WebSocket connection: counted as a session from its first ``start``; input audio sent so far (s)."""

    counted: bool = False
    audio_in_s: float = 0.0


class _AudibleWatch:
    """Finds the output frame holding the first audible sample (the harness's audibility rule, -40 dBFS/10 ms)."""

    def __init__(self, sr: int) -> None:
        self.sr = sr
        self.tail = np.zeros(0, np.float32)
        self.samples = 0
        self.found = False

    def feed(self, audio: np.ndarray) -> bool:
        """True when the first audible sample is inside ``audio`` (only once per turn)."""
        if self.found or self.samples > _AUDIBLE_SEARCH_S * self.sr or audio.size == 0:
            return False
        self.samples += audio.size
        whole = np.concatenate([self.tail, audio])
        self.found = first_audible_sample(whole, self.sr) is not None
        self.tail = whole[-int(0.010 * self.sr) :]
        return self.found


def _disconnect_errors() -> tuple[type[BaseException], ...]:
    """What a send to a client that has gone raises (Starlette, uvicorn)."""
    from starlette.websockets import WebSocketDisconnect

    errors: list[type[BaseException]] = [WebSocketDisconnect, ConnectionError]
    try:
        from uvicorn.protocols.utils import ClientDisconnected

        errors.append(ClientDisconnected)
    except ImportError:
        pass
    return tuple(errors)


class S2SServer:
    """State shared by every connection: the backend, limits, token and metrics."""

    def __init__(
        self, backend: Backend, limits: ServerLimits | None = None, token: str | None = None
    ) -> None:
        self.backend = backend
        self.limits = limits or ServerLimits()
        self.token = token or None
        self.metrics = ServerMetrics()
        self.started = time.time()

    # -- helpers -------------------------------------------------------------------------------------------------
    def authorized(self, headers: Any, query: Any) -> bool:
        if self.token is None:
            return True
        given = query.get("token")
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def info(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "protocol": P.PROTOCOL,
            "ws_path": WS_PATH,
            "backend": self.backend.describe(),
            "formats": list(P.FORMATS),
            "limits": self.limits.to_dict(),
            "auth": self.token is not None,
            "active_sessions": self.metrics.active_sessions,
            "uptime_s": round(time.time() - self.started, 3),
        }

    # -- one connection ------------------------------------------------------------------------------------------
    async def serve_connection(self, ws) -> None:
        await ws.accept()
        if not self.authorized(ws.headers, ws.query_params):
            self.metrics.error("unauthorized")
            await self._send_error_and_close(
                ws, P.ProtocolError("unauthorized", "missing or wrong bearer token (header or ?token=)")
            )
            return
        inbox: asyncio.Queue = asyncio.Queue(maxsize=_INBOX_MESSAGES)
        reader = asyncio.create_task(self._read(ws, inbox))
        conn = _Connection()
        try:
            await self._serve_turns(ws, inbox, conn)
        except P.ProtocolError as exc:
            self.metrics.error(exc.code)
            await self._send_error_and_close(ws, exc)
        except (_ClientGone, *_disconnect_errors()):
            self.metrics.error("client_disconnect")
        except Exception as exc:  # a bug must cost one session, never the server
            self.metrics.error("backend_error")
            await self._send_error_and_close(
                ws, P.ProtocolError("backend_error", f"internal server error: {type(exc).__name__}: {exc}")
            )
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
            while not inbox.empty():  # queued audio of a client that left: free it now
                inbox.get_nowait()
            if conn.counted:
                self.metrics.session_closed()

    def _admit(self, conn: _Connection) -> None:
        """Count the connection as a session at its first ``start``, or refuse it when the server is full."""
        if conn.counted:
            return
        if self.metrics.active_sessions >= self.limits.max_sessions:
            raise P.ProtocolError(
                "too_many_sessions",
                f"the server already serves {self.limits.max_sessions} sessions (max_sessions); retry later",
            )
        self.metrics.session_opened()
        conn.counted = True

    async def _read(self, ws, inbox: asyncio.Queue) -> None:
        """Read frames into ``inbox``: dicts (JSON), bytes (audio), a ProtocolError, or _Gone at the end."""
        limit = self.limits.max_frame_bytes
        try:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    await inbox.put(_Gone(msg.get("code")))
                    return
                data, text = msg.get("bytes"), msg.get("text")
                size = len(data) if data is not None else len((text or "").encode())
                if size > limit:
                    await inbox.put(
                        P.ProtocolError(
                            "frame_too_large", f"frame of {size} bytes exceeds max_frame_bytes={limit}"
                        )
                    )
                    return
                if data is not None:
                    await inbox.put(data)
                else:
                    try:
                        await inbox.put(P.parse_message(text or ""))
                    except P.ProtocolError as exc:
                        await inbox.put(exc)
                        return
        except asyncio.CancelledError:
            raise
        except Exception:
            await inbox.put(_Gone())

    @staticmethod
    def _check(item: Any) -> Any:
        if isinstance(item, P.ProtocolError):
            raise item
        if isinstance(item, _Gone):
            raise _ClientGone()
        return item

    async def _serve_turns(self, ws, inbox: asyncio.Queue, conn: _Connection) -> None:
        limits = self.limits
        draining = False  # the last turn's answer was done before its input: its tail is discarded
        while True:
            wait_s = limits.idle_timeout_s if conn.counted else limits.start_timeout_s
            try:
                item = await asyncio.wait_for(inbox.get(), wait_s)
            except asyncio.TimeoutError:
                if conn.counted:
                    raise P.ProtocolError(
                        "idle_timeout", f"no 'start' within idle_timeout_s={wait_s:g} s after the last turn"
                    ) from None
                raise P.ProtocolError(
                    "start_timeout", f"no 'start' within start_timeout_s={wait_s:g} s of connecting"
                ) from None
            if isinstance(item, _Gone) and item.code in (1000, 1001):
                return  # a clean WebSocket close between turns is a normal end
            item = self._check(item)
            if isinstance(item, bytes):
                if draining:
                    continue
                raise P.ProtocolError("not_started", "binary audio frame before a 'start' message")
            kind = item["type"]
            if draining and kind == P.END_OF_TURN:
                draining = False
                continue
            if kind == P.CLOSE:
                # the client may hang up without waiting for the reply: that is a normal end, not an error
                with contextlib.suppress(Exception):
                    await ws.send_json({"type": P.CLOSED})
                    await ws.close(P.CLOSE_NORMAL)
                return
            if kind != P.START:
                raise P.ProtocolError("not_started", f"{kind!r} message before a 'start' message")
            fmt, session_id = P.validate_start(item, self.backend.input_sample_rate, self.backend.opts)
            self._admit(conn)
            draining = not await self._turn(ws, inbox, fmt, session_id or uuid.uuid4().hex[:12], conn)

    async def _turn(self, ws, inbox: asyncio.Queue, fmt: str, session_id: str, conn: _Connection) -> bool:
        """One turn, ``start`` to ``done``; True when its ``end_of_turn`` arrived. A backend may finish its answer
        while the user still speaks (a model that answered and stopped): ``done`` goes out at once and the rest of
        the turn's audio, up to its ``end_of_turn``, is discarded (a client that is still sending it broke no
        rule)."""
        limits = self.limits
        deadline = time.monotonic() + limits.max_session_s
        loop = asyncio.get_running_loop()
        try:
            session = await asyncio.to_thread(self.backend.open_session)
        except Exception as exc:
            raise P.ProtocolError(
                "backend_error", f"the backend could not open a session: {type(exc).__name__}: {exc}"
            ) from None
        driver = SessionDriver(session, loop, limits.send_queue_frames, limits.send_timeout_s, session_id)
        del session  # the driver owns it; release() frees it when the turn ends
        self.metrics.turn_opened()
        ok = False
        state: dict[str, Any] = {"t_end": None, "conn": conn, "turn_in_s": 0.0}
        inputs = outputs = None
        try:
            driver.start()
            await ws.send_json(
                {
                    "type": P.READY,
                    "protocol": P.PROTOCOL,
                    "session_id": session_id,
                    "format": fmt,
                    "input_sample_rate": self.backend.input_sample_rate,
                    "output_sample_rate": self.backend.output_sample_rate,
                    "backend": self.backend.describe(),
                    "limits": limits.to_dict(),
                }
            )
            inputs = asyncio.create_task(self._turn_inputs(inbox, driver, fmt, state))
            outputs = asyncio.create_task(self._turn_outputs(ws, driver, fmt, state))
            pending = {inputs, outputs, driver.failure}
            while outputs in pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise P.ProtocolError(
                        "session_time_limit",
                        f"the turn ran longer than max_session_s={limits.max_session_s:g} s; closing it",
                    )
                done, pending = await asyncio.wait(
                    pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                if driver.failure in done:
                    failure = driver.failure.result()
                    raise P.ProtocolError(failure.code, failure.message)
                for task in done:
                    task.result()  # re-raises protocol errors, backend failures and disconnects
            ok = True
            await ws.send_json({"type": P.DONE, "session_id": session_id})
            return state["t_end"] is not None
        finally:
            for task in (inputs, outputs):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            driver.stop()
            driver.release()  # an error's traceback may keep this frame alive: it must not keep the audio
            inputs = outputs = None
            self.metrics.turn_closed(ok)

    async def _turn_inputs(self, inbox: asyncio.Queue, driver: SessionDriver, fmt: str, state: dict) -> None:
        """Feed the turn's audio to the backend; after ``end_of_turn`` only watch for misbehaviour or a leave."""
        sr = self.backend.input_sample_rate
        while True:
            item = self._check(await inbox.get())
            if isinstance(item, bytes):
                if state["t_end"] is not None:
                    raise P.ProtocolError("bad_message", "binary audio frame after 'end_of_turn'")
                seconds = len(item) / P.BYTES_PER_SAMPLE[fmt] / sr
                self._count_audio(state, seconds)
                pcm = P.decode_audio(item, fmt)
                self.metrics.audio(in_s=seconds)
                driver.push(pcm)
                continue
            kind = item["type"]
            if kind == P.END_OF_TURN and state["t_end"] is None:
                state["t_end"] = time.perf_counter()
                driver.end_input()
            elif kind == P.CLOSE:
                raise _ClientGone()
            else:
                raise P.ProtocolError("bad_message", f"unexpected {kind!r} message during a turn")

    def _count_audio(self, state: dict, seconds: float) -> None:
        """Refuse input beyond ``max_turn_audio_s`` for the turn or ``max_connection_audio_s`` for the connection."""
        limits, conn = self.limits, state["conn"]
        state["turn_in_s"] += seconds
        conn.audio_in_s += seconds
        if state["turn_in_s"] > limits.max_turn_audio_s:
            raise P.ProtocolError(
                "audio_limit",
                f"the turn sent more than max_turn_audio_s={limits.max_turn_audio_s:g} s of audio",
            )
        if conn.audio_in_s > limits.max_connection_audio_s:
            raise P.ProtocolError(
                "audio_limit",
                f"the connection sent more than max_connection_audio_s={limits.max_connection_audio_s:g} s of audio",
            )

    async def _turn_outputs(self, ws, driver: SessionDriver, fmt: str, state: dict) -> None:
        """Forward the backend's output to the client as soon as the worker hands it over."""
        sr = self.backend.output_sample_rate
        watch = _AudibleWatch(sr)
        while True:
            item = await driver.outputs.get()
            if isinstance(item, Finished):
                return
            if isinstance(item, Failed):
                raise P.ProtocolError(item.code, item.message)
            assert isinstance(item, OutputChunk)
            for name in item.marks:
                msg = {"type": P.MARK, "name": name}
                if item.text is not None:
                    msg["text"] = item.text
                await ws.send_json(msg)
            if item.text is not None and not item.marks:
                await ws.send_json({"type": P.TEXT, "text": item.text})
            if item.audio is not None and np.asarray(item.audio).size:
                audio = np.asarray(item.audio, dtype=np.float32).reshape(-1)
                await ws.send_bytes(P.encode_audio(audio, fmt))
                self.metrics.audio(out_s=audio.size / sr)
                if watch.feed(audio) and state["t_end"] is not None:
                    self.metrics.observe_ttfa(time.perf_counter() - state["t_end"])

    async def _send_error_and_close(self, ws, exc: P.ProtocolError) -> None:
        """Best effort: the error frame, then the close code; a client that does not read cannot stall us."""
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            await asyncio.wait_for(ws.send_json(exc.to_message()), 1.0)
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            await asyncio.wait_for(ws.close(exc.close_code, reason=exc.code), 1.0)


def create_app(backend: Backend, limits: ServerLimits | None = None, token: str | None = None):
    """A FastAPI app serving ``backend`` (already loaded and warmed up) under ``limits``."""
    try:
        from fastapi import FastAPI, WebSocket
        from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"{exc.name} is needed for `s2s-bench serve`; install the extra: pip install 's2s-bench[serve]'"
        ) from None

    server = S2SServer(backend, limits, token)
    app = FastAPI(title="s2s-bench server", version=P.PROTOCOL)
    app.state.s2s = server

    @app.get("/health")
    async def health():
        return JSONResponse(server.info())

    @app.get("/metrics")
    async def metrics():
        return PlainTextResponse(server.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/")
    async def index():
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/static/{name}")
    async def static(name: str):
        path = STATIC_DIR / name
        if name not in {p.name for p in STATIC_DIR.iterdir()}:
            return PlainTextResponse(f"no such file: {name}", status_code=404)
        media = "text/javascript" if name.endswith(".js") else None
        return FileResponse(path, media_type=media)

    @app.websocket(WS_PATH)
    async def ws_endpoint(websocket: WebSocket):
        await server.serve_connection(websocket)

    return app
