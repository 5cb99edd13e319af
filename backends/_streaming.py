"""Token streaming between a ``generate`` thread and its consumer, and sentence splitting of a text stream."""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

_END = object()


class TokenQueue:
    """A ``transformers`` streamer (``put``/``end``) that hands generated token ids to another thread.

    ``generate`` calls ``put`` first with the prompt (skipped here), then once per new token, and ``end`` when it
    stops. Iterating yields token ids (ints) as they are produced; an exception raised in the generating thread is
    re-raised in the consumer. ``on_first``/``on_end`` run in the generating thread, at the moment it happens.
    """

    def __init__(
        self, on_first: Callable[[], None] | None = None, on_end: Callable[[], None] | None = None
    ) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._prompt_seen = False
        self._first_seen = False
        self.on_first = on_first
        self.on_end = on_end

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        ids = value.reshape(-1).tolist()
        if ids and not self._first_seen:
            self._first_seen = True
            if self.on_first is not None:
                self.on_first()
        for token in ids:
            self._queue.put(int(token))

    def end(self) -> None:
        if self.on_end is not None:
            self.on_end()
        self._queue.put(_END)

    def fail(self, exc: BaseException) -> None:
        self._queue.put(exc)

    def __iter__(self) -> Iterator[int]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def generate_in_thread(generate: Callable[..., Any], streamer: TokenQueue, **kwargs: Any) -> threading.Thread:
    """Run ``generate(streamer=streamer, **kwargs)`` in a daemon thread; its failure surfaces in the consumer."""

    def target() -> None:
        try:
            generate(streamer=streamer, **kwargs)
        except BaseException as exc:
            streamer.fail(exc)

    thread = threading.Thread(target=target, name="generate", daemon=True)
    thread.start()
    return thread


SENTENCE_END = re.compile(r"[.!?।॥\n]+[\"')\]]*\s*")
CLAUSE_END = re.compile(r"[,;:]\s+")


def split_sentences(text: str, min_clause_chars: int = 24) -> tuple[list[str], str]:
    """Split ``text`` into complete sentences or clauses and the unfinished rest.

    A sentence ends at ``. ! ? । ॥`` or a newline; a clause ends at ``, ; :`` followed by a space, once it holds at
    least ``min_clause_chars`` characters (short clauses wait for more). Returns (complete pieces, remainder); the
    pieces are stripped and never empty.
    """
    pieces: list[str] = []
    start = 0
    pos = 0
    while pos < len(text):
        sentence = SENTENCE_END.search(text, pos)
        clause = CLAUSE_END.search(text, pos)
        candidates = [m for m in (sentence, clause) if m is not None]
        if not candidates:
            break
        match = min(candidates, key=lambda m: m.start())
        if match is clause and len(text[start : match.start()].strip()) < min_clause_chars:
            pos = match.end()
            continue
        if (
            match.end() == len(text)
            and match is sentence
            and not text[match.start() : match.end()].endswith((" ", "\n"))
        ):
            # "3." at the very end may still become "3.5": wait for the next token unless a space closed it.
            if not re.search(r"[!?।॥\n]", match.group()):
                break
        piece = text[start : match.end()].strip()
        if piece:
            pieces.append(piece)
        start = pos = match.end()
    return pieces, text[start:]
