"""The streaming backend contract.

A backend opens sessions; a session takes the user's audio in chunks, is told when the user's turn ends, and hands
out response audio (and stage marks) as it becomes ready. The harness owns every clock: a backend never times
itself, it only says *what* happened; the runner stamps *when* it saw it.

Offline (whole utterance in, whole answer out) systems subclass :class:`OfflineBackend`, which adapts them: the
answer is computed in a worker thread after ``end_input`` and handed out as soon as it is emitted.
"""

from __future__ import annotations

import math
import queue
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


class BackendError(Exception):
    """A backend could not be created, loaded or run; the message says what to do."""


class OptionError(BackendError):
    """A backend option has a wrong name or value."""


@dataclass(frozen=True)
class Option:
    """One backend option: its type, default and help text.

    ``type`` is one of ``int``, ``float``, ``str``, ``bool``; ``choices`` restricts the values.
    """

    type: type = str
    default: Any = None
    help: str = ""
    choices: tuple | None = None
    min: float | None = None
    secret: bool = False
    """A secret (a token, a password): shown as ``***`` in run keys, run.json, events and reports."""

    def parse(self, backend: str, name: str, raw: Any) -> Any:
        value = raw
        if isinstance(raw, str) and self.type is not str:
            try:
                if self.type is bool:
                    low = raw.strip().lower()
                    if low not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                        raise ValueError(raw)
                    value = low in {"1", "true", "yes", "on"}
                else:
                    value = self.type(raw)
            except ValueError:
                raise OptionError(
                    f"Expected option `{name}` of backend `{backend}` to be {self.type.__name__} but got {raw!r}"
                ) from None
        if self.type is float and isinstance(value, (int, float)) and not math.isfinite(value):
            raise OptionError(
                f"Expected option `{name}` of backend `{backend}` to be a finite number but got {raw!r}"
            )
        if self.choices is not None and value not in self.choices:
            raise OptionError(
                f"Expected option `{name}` of backend `{backend}` to be one of "
                f"{', '.join(map(str, self.choices))} but got {value!r}"
            )
        if self.min is not None and value is not None and value < self.min:
            raise OptionError(
                f"Expected option `{name}` of backend `{backend}` to be >= {self.min} but got {value!r}"
            )
        return value


@dataclass
class OutputChunk:
    """What a session hands out: audio (float32 mono at ``output_sample_rate``), stage marks, or both.

    Marks are names such as ``asr_final``, ``llm_first_token``, ``tts_first_audio``; the runner records the time it
    received them. ``text`` carries an optional transcript or response text for the event log.
    """

    audio: np.ndarray | None = None
    marks: tuple[str, ...] = ()
    text: str | None = None


class Session(ABC):
    """One user turn (or conversation) with a backend."""

    @abstractmethod
    def push(self, pcm: np.ndarray) -> None:
        """Take float32 mono audio at ``input_sample_rate``, any chunk length."""

    @abstractmethod
    def end_input(self) -> None:
        """The user's turn is over."""

    @abstractmethod
    def poll(self, timeout: float = 0.0) -> OutputChunk | None:
        """Return the next ready output, waiting at most ``timeout`` seconds; ``None`` if nothing is ready."""

    @property
    @abstractmethod
    def done(self) -> bool:
        """True once no more output will come (all of it has been polled)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free resources; may be called from another thread to cut a hung session."""


class Backend(ABC):
    """A speech-to-speech system the harness can measure.

    Subclasses set ``name`` and ``options`` (the schema), and implement :meth:`open_session`. ``load`` and
    ``warmup`` run outside every timed region.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    options: ClassVar[Mapping[str, Option]] = {}
    input_sample_rate: int = 16000
    output_sample_rate: int = 16000
    streaming: ClassVar[bool] = True
    endpoints_itself: ClassVar[bool] = False
    """True for a system that decides by itself when the user has finished (a full-duplex model). With
    ``endpointing=system`` the others are put behind the harness's endpointer adapter (harness.turns.endpointer)."""

    def __init__(self, **opts: Any) -> None:
        self.opts = self.parse_options(opts)

    @classmethod
    def parse_options(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(raw) - set(cls.options))
        if unknown:
            known = ", ".join(sorted(cls.options)) or "(none)"
            raise OptionError(
                f"Unknown option {unknown[0]!r} for backend `{cls.name}`; known options: {known}"
            )
        return {
            key: opt.parse(cls.name, key, raw[key]) if key in raw else opt.default
            for key, opt in cls.options.items()
        }

    @classmethod
    def weights_status(cls) -> tuple[bool | None, str]:
        """(present?, detail) for the default weights; ``None`` when the backend needs none."""
        return None, "no weights needed"

    @property
    def latency_only(self) -> bool:
        """True when the backend runs random weights: its latency is real, its output quality is meaningless."""
        return False

    def load(self) -> None:  # noqa: B027 - optional hook
        """Load models; raise :class:`BackendError` naming missing files and where to put them."""

    def warmup(self) -> None:  # noqa: B027 - optional hook
        """Run a short dummy turn so that first-call costs are not measured."""

    @abstractmethod
    def open_session(self) -> Session:
        """Start one user turn."""

    def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Free models at the end of a run."""

    def describe(self) -> dict[str, Any]:
        """What run.json records about the backend; secret options are redacted (``***``)."""
        secret = {k for k, o in self.options.items() if o.secret}
        return {
            "name": self.name,
            "options": {k: redact_option(k, v, secret=k in secret) for k, v in self.opts.items()},
            "input_sample_rate": self.input_sample_rate,
            "output_sample_rate": self.output_sample_rate,
            "streaming": self.streaming,
            "latency_only": self.latency_only,
        }


class OutputQueue:
    """Output handed from a producing thread to ``poll``: chunks, then ``finish()`` or ``fail(exc)``.

    ``poll`` waits at most ``timeout`` seconds and re-raises a producer's exception, so the runner records it as
    this utterance's failure; ``done`` is True once the end (or the error) has been polled.
    """

    _END = object()

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self.done = False

    def put(self, chunk: OutputChunk) -> None:
        self._queue.put(chunk)

    def finish(self) -> None:
        self._queue.put(self._END)

    def fail(self, exc: BaseException) -> None:
        self._queue.put(exc)

    def poll(self, timeout: float = 0.0) -> OutputChunk | None:
        if self.done:
            return None
        try:
            item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None
        if item is self._END:
            self.done = True
            return None
        if isinstance(item, BaseException):
            self.done = True
            raise item
        return item


class ThreadedSession(Session):
    """A session whose output is produced by a worker thread and handed over through an :class:`OutputQueue`.

    Subclasses implement :meth:`produce`, which runs once in the worker after ``end_input`` (or earlier, if
    :meth:`start` is called) and calls ``emit`` for each chunk. ``closed`` is set when the harness closes the
    session (end of turn, timeout, hang): long computations should check it and stop early.
    """

    def __init__(self) -> None:
        self._input: list[np.ndarray] = []
        self.output = OutputQueue()
        self._thread: threading.Thread | None = None
        self.closed = threading.Event()

    def push(self, pcm: np.ndarray) -> None:
        self._input.append(np.asarray(pcm, dtype=np.float32))

    def input_audio(self) -> np.ndarray:
        return np.concatenate(self._input) if self._input else np.zeros(0, np.float32)

    def end_input(self) -> None:
        self.start()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"{type(self).__name__}-worker", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        try:
            self.produce(self.output.put)
        except BaseException as exc:  # handed to the runner through poll()
            self.output.fail(exc)
        else:
            self.output.finish()

    @abstractmethod
    def produce(self, emit: Callable[[OutputChunk], None]) -> None:
        """Compute the answer; call ``emit(OutputChunk(...))`` as parts become ready."""

    def poll(self, timeout: float = 0.0) -> OutputChunk | None:
        return self.output.poll(timeout)

    @property
    def done(self) -> bool:
        return self.output.done

    def close(self) -> None:
        self.closed.set()


class OfflineBackend(Backend):
    """Adapter for whole-utterance systems: implement :meth:`respond`; it runs in a worker thread after
    ``end_input``, and whatever it emits is handed out at once."""

    streaming: ClassVar[bool] = False

    @abstractmethod
    def respond(self, audio: np.ndarray, emit: Callable[[OutputChunk], None], stop: threading.Event) -> None:
        """Answer the whole utterance ``audio``; call ``emit`` for marks and audio as they are ready.

        ``stop`` is set when the harness closes the session (a timeout, a hang, the end of the run): check it
        between expensive steps and return early.
        """

    def open_session(self) -> Session:
        return _OfflineSession(self)


class _OfflineSession(ThreadedSession):
    def __init__(self, backend: OfflineBackend) -> None:
        super().__init__()
        self.backend = backend

    def produce(self, emit: Callable[[OutputChunk], None]) -> None:
        self.backend.respond(self.input_audio(), emit, self.closed)


REDACTED = "***"
_SECRET_NAME = re.compile(r"(?:^|_)(?:token|secret|password|passwd|api_?key|auth|credentials?)(?:$|_)", re.I)


def is_secret_name(name: str) -> bool:
    """True for option (or URL query) names that hold secrets: ``token``, ``api_key``, ``password``, ..."""
    return bool(_SECRET_NAME.search(name))


def redact_url(url: str) -> str:
    """``url`` with a password in its user part and secret-named query values replaced by ``***``."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":" + REDACTED
        netloc = f"{user}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(k) for k, _ in pairs):
            query = urlencode([(k, REDACTED if is_secret_name(k) and v else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_option(name: str, value: Any, secret: bool = False) -> Any:
    """The value to show for option ``name``: ``***`` for a secret (``env:NAME`` references are shown, they are
    not secrets), URLs without their credentials, anything else unchanged."""
    if isinstance(value, str):
        if (secret or is_secret_name(name)) and value and not value.startswith("env:"):
            return REDACTED
        if "://" in value:
            return redact_url(value)
    return value


def _secret_parts(name: str, value: str) -> list[str]:
    """The secret substrings of one option value (to scrub them from free text such as error messages)."""
    if is_secret_name(name) and value and not value.startswith("env:"):
        return [value]
    if "://" not in value:
        return []
    from urllib.parse import parse_qsl, urlsplit

    out = []
    try:
        parts = urlsplit(value)
        user = parts.netloc.rpartition("@")[0]
        if ":" in user:
            out.append(user.split(":", 1)[1])
        out += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if is_secret_name(k) and v]
    except ValueError:
        pass
    return [s for s in out if s]


@dataclass
class BackendSpec:
    """``NAME[:key=value,...]``: the one spelling of a backend, in the CLI and in pytest.

    ``options`` hold the values as given (a token included: they create the backend). Everything that *shows* a
    spec uses :attr:`key` (``str(spec)`` is the key): secret options (by name: ``token``, ``api_key``,
    ``password``, ...) and credentials inside URLs read ``***``, so a run key, an event line, a folder name or a
    table never carries a secret. Pass secrets as ``token=env:NAME`` to keep them off the command line too.
    """

    name: str
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | BackendSpec) -> BackendSpec:
        if isinstance(text, BackendSpec):
            return text
        text = text.strip()
        name, _, rest = text.partition(":")
        if not name:
            raise OptionError(f"Expected a backend spec NAME[:key=value,...] but got {text!r}")
        options: dict[str, str] = {}
        for index, part in enumerate(filter(None, (p.strip() for p in rest.split(","))), 1):
            key, eq, value = part.partition("=")
            if not eq or not key:  # the part itself is not shown: it may be a mistyped secret
                raise OptionError(
                    f"Expected key=value in backend spec `{name}:...` but option {index} has "
                    f"{'no name' if eq else 'no ='} (write NAME:key=value,key=value)"
                )
            if key in options:
                raise OptionError(f"Option {key!r} given twice in backend spec of `{name}`")
            options[key.strip()] = value.strip()
        return cls(name, options)

    @property
    def key(self) -> str:
        """The spec as shown and stored everywhere (run keys, folder names, events): secrets read ``***``."""
        if not self.options:
            return self.name
        return self.name + ":" + ",".join(f"{k}={redact_option(k, v)}" for k, v in self.options.items())

    def reveal(self) -> str:
        """The full spelling, secrets included: only for creating the backend in another process."""
        if not self.options:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.options.items())

    def secret_values(self) -> list[str]:
        return [s for k, v in self.options.items() for s in _secret_parts(k, v)]

    def redact(self, text: str) -> str:
        """``text`` (an error message, say) with every secret of this spec replaced by ``***``."""
        for secret in sorted(self.secret_values(), key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def __str__(self) -> str:
        return self.key
