"""A backend may finish its answer while the user still speaks: the server says ``done`` and discards the rest of
that turn's input instead of calling it a protocol error (seen under load: custom answered and stopped before the
lagging client had sent its last frames, and the turn failed with ``not_started``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 's2s-bench[serve]'")

from server_helpers import connect, recv_json, speech_like  # noqa: E402

from harness.backend import Backend, OutputChunk, Session  # noqa: E402
from harness.server import protocol as P  # noqa: E402
from harness.server.serving import ServerThread  # noqa: E402


class _EarlySession(Session):
    """Answers 20 ms of tone after the first pushed chunk, then is done, whatever input follows."""

    def __init__(self) -> None:
        self.answer: list[np.ndarray] = []
        self.sent = False

    def push(self, pcm: np.ndarray) -> None:
        if not self.sent and not self.answer:
            self.answer.append((0.3 * np.sin(np.arange(320) / 5.0)).astype(np.float32))

    def end_input(self) -> None:
        pass

    def poll(self, timeout: float = 0.0) -> OutputChunk | None:
        if self.answer:
            self.sent = True
            return OutputChunk(audio=self.answer.pop())
        return None

    @property
    def done(self) -> bool:
        return self.sent and not self.answer


class EarlyBackend(Backend):
    name = "early"
    options = {}

    def open_session(self) -> Session:
        return _EarlySession()


def test_audio_after_an_early_done_is_discarded_and_the_connection_goes_on():
    with ServerThread(EarlyBackend()) as srv, connect(srv.url) as ws:
        for _ in range(2):
            ws.send(json.dumps(P.start_message(16000, "f32")))
            assert recv_json(ws)["type"] == "ready"
            audio = speech_like(0.5)
            ws.send(P.encode_audio(audio[:320], "f32"))
            while True:  # the answer, then done: before the user's turn is over
                frame = ws.recv(timeout=10)
                if isinstance(frame, str):
                    assert json.loads(frame)["type"] == "done", frame
                    break
            for i in range(320, audio.size, 320):  # the user goes on speaking, then ends the turn
                ws.send(P.encode_audio(audio[i : i + 320], "f32"))
            ws.send(json.dumps({"type": P.END_OF_TURN}))
        ws.send(json.dumps({"type": P.CLOSE}))
        assert recv_json(ws)["type"] == P.CLOSED
        assert srv.metrics.turns_total["ok"] == 2 and not srv.metrics.errors_total
