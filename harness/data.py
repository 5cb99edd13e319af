"""The data interface: utterances, datasets by name or manifest path.

``--data NAME`` looks ``NAME`` up among datasets registered through the ``register_datasets`` hook;
``--data path/to/manifest.jsonl`` (or a folder holding ``manifest.jsonl``) reads a manifest directly.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .audio import MAX_DURATION_S, MIN_DURATION_S, AudioError, audio_problems, read_audio, resample


@dataclass
class Utterance:
    """One user turn to play to a backend. Audio is loaded (and validated) lazily, at the rate asked for."""

    id: str
    audio_path: str | None = None
    sample_rate: int | None = None
    duration_s: float | None = None
    text: str | None = None
    response_text: str | None = None
    response_audio_path: str | None = None
    speaker: str | None = None
    language: str = "te"
    split: str | None = None
    source: str | None = None
    license: str | None = None
    sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    audio_array: np.ndarray | None = field(default=None, repr=False)

    def load_audio(self, target_sr: int) -> np.ndarray:
        """Float32 mono at ``target_sr``; raises :class:`AudioError` naming the file and the problem.

        Every load is checked: the file decodes, its sha256 and sample rate match the manifest's (when given), and
        the audio passes :func:`validate_audio`. Stereo is mixed down; other rates are resampled (soxr).
        """
        if self.audio_array is not None:
            x, sr = np.asarray(self.audio_array, dtype=np.float32), int(self.sample_rate or target_sr)
            where = f"<generated:{self.id}>"
        elif self.audio_path:
            where = self.audio_path
            if self.sha256:
                actual = file_sha256(self.audio_path)
                if actual is not None and actual != self.sha256:
                    raise AudioError(
                        where, f"sha256 mismatch: manifest {self.sha256[:12]}..., file {actual[:12]}..."
                    )
            x, sr = read_audio(self.audio_path)
            if self.sample_rate and sr != self.sample_rate:
                raise AudioError(where, f"manifest declares {self.sample_rate} Hz but the file is {sr} Hz")
            if "start_s" in self.extra:  # a segment of a longer recording (e.g. IndicVoices)
                start, end = float(self.extra["start_s"]), float(self.extra.get("end_s", x.size / sr))
                if end <= start or start * sr >= x.size:
                    raise AudioError(
                        where, f"segment {start:.2f}-{end:.2f} s is outside the {x.size / sr:.2f} s file"
                    )
                x = x[int(round(start * sr)) : int(round(end * sr))]
                where = f"{where} [{start:.2f}-{end:.2f} s]"
        else:
            raise AudioError(None, f"utterance {self.id!r} has neither audio_path nor audio")
        validate_audio(x, sr, where)
        return resample(x, sr, target_sr)

    def load_response_audio(self, target_sr: int) -> np.ndarray | None:
        """The reference response (conversational pairs) as float32 mono at ``target_sr``, or None."""
        if not self.response_audio_path:
            return None
        want = self.extra.get("response_sha256")
        if want and file_sha256(self.response_audio_path) not in (None, want):
            raise AudioError(self.response_audio_path, "sha256 mismatch with the manifest's response_sha256")
        x, sr = read_audio(self.response_audio_path)
        validate_audio(x, sr, self.response_audio_path)
        return resample(x, sr, target_sr)

    def to_record(self) -> dict[str, Any]:
        rec = asdict(self)
        rec.pop("audio_array")
        return {k: v for k, v in rec.items() if v not in (None, {}, "")}


def file_sha256(path: str | Path) -> str | None:
    """Hex sha256 of a file's bytes, or None when it cannot be read (the decoder then names the problem)."""
    try:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    except OSError:
        return None


def validate_audio(
    x: np.ndarray, sr: int, where: str, min_s: float = MIN_DURATION_S, max_s: float = MAX_DURATION_S
) -> None:
    """Raise :class:`AudioError` for audio no benchmark should be run on (see :func:`harness.audio.audio_problems`):
    empty, NaN/inf, too short/long, digital silence, heavy clipping."""
    errors = [reason for severity, reason in audio_problems(x, sr, min_s, max_s) if severity == "error"]
    if errors:
        raise AudioError(where, "; ".join(errors))


DatasetFactory = Callable[..., Iterable[Utterance]]


def dataset_registry() -> dict[str, tuple[DatasetFactory, str]]:
    from .plugins import load_plugins, pm

    load_plugins()
    found: dict[str, tuple[DatasetFactory, str]] = {}

    def register(name: str, factory: DatasetFactory, description: str = "") -> None:
        if name in found:
            raise ValueError(f"Dataset {name!r} is registered twice")
        found[name] = (factory, description)

    pm.hook.register_datasets(register=register)
    return found


MAX_ID_BYTES = 200
"""Longest utterance id (UTF-8 bytes): the id names the output file ``<id>.wav``, and file names stop at 255."""


def id_problem(uid: object) -> str | None:
    """Why ``uid`` cannot be an utterance id (``None`` when it can).

    The id names the output file (``outputs/<backend>/<id>.wav``), so it must be one plain file name: a non-empty
    string without ``/`` or ``\\``, not ``.`` or ``..``, without control characters, at most 200 bytes.
    """
    if not isinstance(uid, str):
        return f"id must be a string but got {type(uid).__name__} {uid!r}"
    if not uid.strip():
        return "id is empty"
    if "/" in uid or "\\" in uid or uid in (".", ".."):
        return f"id {uid!r} is not a plain file name (no '/', '\\', '.' or '..'): it names the output file"
    if any(ord(c) < 32 or ord(c) == 127 for c in uid):
        return f"id {uid!r} holds control characters"
    if len(uid.encode("utf-8")) > MAX_ID_BYTES:
        return f"id {uid[:40]!r}... is longer than {MAX_ID_BYTES} bytes"
    return None


def check_utterances(utts: Iterable[Utterance], where: str) -> None:
    """Raise ``ValueError`` naming every bad or duplicate id of ``utts`` (from ``where``), up to 10 of them.

    Two utterances with one id would be measured twice and write one output file, the second over the first.
    """
    problems, seen = [], set()
    for u in utts:
        why = id_problem(u.id)
        if why is None and u.id in seen:
            why = f"id {u.id!r} is used twice (ids must be unique: each names one output file)"
        if why:
            problems.append(why)
        seen.add(u.id if isinstance(u.id, str) else repr(u.id))
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise ValueError(f"{where}: " + "; ".join(problems[:10]) + more)


_STR_FIELDS = ("audio_path", "text", "response_text", "response_audio_path", "speaker", "language", "split",
               "source", "license", "sha256")  # fmt: skip


def _record_problems(rec: dict[str, Any]) -> list[str]:
    """Type problems of one manifest record (after aliasing), each naming the field and the value."""
    out = []
    why = id_problem(rec.get("id")) if "id" in rec else "manifest line has no 'id'"
    if why:
        out.append(why)
    for key in _STR_FIELDS:
        if rec.get(key) is not None and not isinstance(rec[key], str):
            out.append(f"'{key}' must be a string but got {type(rec[key]).__name__} {rec[key]!r}")
    sr = rec.get("sample_rate")
    if sr is not None and (not isinstance(sr, int) or isinstance(sr, bool) or sr <= 0):
        out.append(f"'sample_rate' must be a positive integer (Hz) but got {sr!r}")
    dur = rec.get("duration_s")
    if dur is not None and (
        not isinstance(dur, (int, float)) or isinstance(dur, bool) or not math.isfinite(dur) or dur < 0
    ):
        out.append(f"'duration' must be a non-negative number of seconds but got {dur!r}")
    if rec.get("extra") is not None and not isinstance(rec["extra"], dict):
        out.append(f"'extra' must be an object but got {rec['extra']!r}")
    return out


def parse_manifest(path: str | Path) -> tuple[list[Utterance], list[tuple[int, str]]]:
    """Read a JSONL manifest: (the usable utterances, ``(line number, problem)`` for every unusable line).

    Relative audio paths are relative to the manifest's folder. A line is unusable when it is not a JSON object,
    a field has the wrong type, or its id is not a plain file name or repeats an earlier line's.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"Manifest not found: {path}")
    known = set(Utterance.__dataclass_fields__) - {"audio_array"}
    aliases = {"audio": "audio_path", "duration": "duration_s", "response_audio": "response_audio_path"}
    out: list[Utterance] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append((lineno, f"not valid JSON ({exc.msg})"))
            continue
        if not isinstance(rec, dict):
            problems.append((lineno, f"expected a JSON object but got {type(rec).__name__}"))
            continue
        rec = {aliases.get(k, k): v for k, v in rec.items()}
        found = _record_problems(rec)
        if not found and rec["id"] in seen:
            found = [f"id {rec['id']!r} is already used on line {seen[rec['id']]} (ids must be unique)"]
        if found:
            problems += [(lineno, why) for why in found]
            continue
        seen[rec["id"]] = lineno
        extra = {k: rec.pop(k) for k in list(rec) if k not in known}
        for key in ("audio_path", "response_audio_path"):
            if rec.get(key) and not Path(rec[key]).is_absolute():
                rec[key] = str(path.parent / rec[key])
        out.append(
            Utterance(**rec, extra={**rec.pop("extra", {}), **extra} if extra else rec.pop("extra", {}))
        )
    return out, problems


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a JSONL manifest (see :func:`parse_manifest`); raises ``ValueError`` naming every unusable line."""
    utts, problems = parse_manifest(path)
    if problems:
        where = Path(path) / "manifest.jsonl" if Path(path).is_dir() else Path(path)
        shown = "; ".join(f"line {n}: {why}" for n, why in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise ValueError(
            f"{where}: {len(problems)} unusable manifest line(s): {shown}{more} "
            f"(`s2s-bench data check {where}` lists them all)"
        )
    return utts


def resolve_data(data: str) -> tuple[str | None, dict[str, Any]]:
    """Split a ``--data`` value into (registered dataset name, options).

    ``NAME`` is a registered dataset; ``NAME:PATH`` is a registered corpus loader pointed at a local folder
    (``fleurs:/data/fleurs/te_in``); anything else is a manifest path (returned as (None, {})).
    """
    registry = dataset_registry()
    if data in registry:
        return data, {}
    name, sep, path = data.partition(":")
    if sep and name in registry and path:
        return name, {"path": path}
    return None, {}


def load_utterances(
    data: str, split: str | None = None, limit: int | None = None, **options: Any
) -> list[Utterance]:
    """Utterances of a registered dataset, ``NAME:PATH`` corpus folder or manifest path, optionally one split
    and the first ``limit``. Built-in synthetic sets are built into the cache on first use."""
    name, extra = resolve_data(data)
    if name is not None:
        registry = dataset_registry()
        utts = list(registry[name][0](**extra, **options))
    elif data.endswith(".jsonl") or Path(data).is_dir():
        utts = read_manifest(data)
    else:
        known = ", ".join(sorted(dataset_registry()))
        raise ValueError(
            f"Unknown dataset {data!r}; known datasets: {known}; or a manifest .jsonl path, a folder holding "
            "manifest.jsonl, or CORPUS:/path/to/folder (see `s2s-bench data list`)"
        )
    check_utterances(utts, data)
    if split:
        chosen = [u for u in utts if u.split == split]
        if not chosen and utts:
            present = sorted({str(u.split) for u in utts})
            raise ValueError(f"{data} has no split {split!r}; its splits: {', '.join(present)}")
        utts = chosen
    if limit is not None:
        utts = utts[:limit]
    return utts
