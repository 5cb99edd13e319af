"""The data interface: utterances, datasets by name or manifest path.

``--data NAME`` looks ``NAME`` up among datasets registered through the ``register_datasets`` hook;
``--data path/to/manifest.jsonl`` (or a folder holding ``manifest.jsonl``) reads a manifest directly.
"""

from __future__ import annotations

import hashlib
import json
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


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a JSONL manifest; relative audio paths are relative to the manifest's folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"Manifest not found: {path}")
    known = set(Utterance.__dataclass_fields__) - {"audio_array"}
    aliases = {"audio": "audio_path", "duration": "duration_s", "response_audio": "response_audio_path"}
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        rec = {aliases.get(k, k): v for k, v in rec.items()}
        extra = {k: rec.pop(k) for k in list(rec) if k not in known}
        for key in ("audio_path", "response_audio_path"):
            if rec.get(key) and not Path(rec[key]).is_absolute():
                rec[key] = str(path.parent / rec[key])
        if "id" not in rec:
            raise ValueError(f"{path}:{lineno}: manifest line has no 'id'")
        out.append(
            Utterance(**rec, extra={**rec.pop("extra", {}), **extra} if extra else rec.pop("extra", {}))
        )
    return out


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
    if split:
        utts = [u for u in utts if u.split == split]
    if limit is not None:
        utts = utts[:limit]
    return utts
