"""The event log: ``events.jsonl``, one JSON object a line, written as the run goes.

Worker threads append events to an in-memory queue (cheap, on the timed path); a writer thread flushes the queue to
disk every ``flush_s`` seconds, so a killed run loses at most that much, and never a finished utterance: the runner
waits for a flush after each utterance's ``utt_end``. When the disk refuses a write (full, read-only, an I/O error),
the log stops and every later ``flush`` raises :class:`harness.results.StorageError`: the run stops instead of
measuring what it cannot record.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from .storage import StorageError, json_safe


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
        self.error: StorageError | None = None
        self._flush_s = flush_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="event-writer", daemon=True)
        self._thread.start()

    def emit(self, event: dict) -> None:
        """Queue one event (thread-safe, does no I/O)."""
        self._pending.append(event)

    def flush(self) -> None:
        """Write the queued events; raises :class:`StorageError` (now and ever after) when the disk refuses."""
        with self._lock:
            if self.error is not None:
                raise self.error
            lines = []
            while self._pending:
                lines.append(_line(self._pending.popleft()))
            if lines:
                try:
                    self._file.write("\n".join(lines) + "\n")
                    self._file.flush()
                except OSError as exc:
                    self.error = StorageError(self.path, exc)
                    raise self.error from None

    def _loop(self) -> None:
        while not self._stop.wait(self._flush_s):
            try:
                self.flush()
            except StorageError:
                return  # the runner sees the error at its next flush

    def close(self) -> None:
        """Flush and close; raises :class:`StorageError` if the last events could not be written."""
        self._stop.set()
        self._thread.join()
        try:
            self.flush()
        finally:
            try:
                self._file.close()
            except OSError:  # the unwritten tail of a full disk: already reported by flush
                pass

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _line(event: dict) -> str:
    """One event as a JSON line; NaN/inf (never valid JSON) become null."""
    try:
        return json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(json_safe(event), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def read_events(path: str | Path) -> list[dict]:
    """All complete events of a log; a line cut short by a killed run is ignored."""
    return list(iter_events(path))


def iter_events(path: str | Path) -> Iterator[dict]:
    """Events line by line. Lines are decoded one at a time, so a line cut by a kill (even inside a multi-byte
    Telugu character) is skipped like any other cut line, wherever it is."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break  # truncated last line of an interrupted run
            try:
                event = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue  # a line cut short by a killed run, ended by the next run's resume
            if isinstance(event, dict):
                yield event
