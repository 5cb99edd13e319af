"""The event log: ``events.jsonl``, one JSON object a line, written as the run goes.

Worker threads append events to an in-memory queue (cheap, on the timed path); a writer thread flushes the queue to
disk every ``flush_s`` seconds, so a killed run loses at most that much, and never a finished utterance: the runner
waits for a flush after each utterance's ``utt_end``.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path


class EventLog:
    def __init__(self, path: str | Path, flush_s: float = 0.1) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb") as fh:
                fh.seek(-1, 2)
                cut_short = fh.read(1) != b"\n"
        else:
            cut_short = False
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if cut_short:  # a killed run left half a line: end it so the next event starts clean
            self._file.write("\n")
        self._pending: deque[dict] = deque()
        self._flush_s = flush_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="event-writer", daemon=True)
        self._thread.start()

    def emit(self, event: dict) -> None:
        """Queue one event (thread-safe, does no I/O)."""
        self._pending.append(event)

    def flush(self) -> None:
        with self._lock:
            lines = []
            while self._pending:
                lines.append(json.dumps(self._pending.popleft(), ensure_ascii=False, separators=(",", ":")))
            if lines:
                self._file.write("\n".join(lines) + "\n")
                self._file.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self._flush_s):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()
        self._file.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_events(path: str | Path) -> list[dict]:
    """All complete events of a log; a line cut short by a killed run is ignored."""
    return list(iter_events(path))


def iter_events(path: str | Path) -> Iterator[dict]:
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # truncated last line of an interrupted run
            line = line.strip()
            if line:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue
