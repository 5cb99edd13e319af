"""The data interface: utterances, datasets by name or manifest path.

``--data NAME`` looks ``NAME`` up among datasets registered through the ``register_datasets`` hook;
``--data path/to/manifest.jsonl`` (or a folder holding ``manifest.jsonl``) reads a manifest directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .audio import AudioError, read_audio, resample


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
        """Float32 mono at ``target_sr``; raises :class:`AudioError` naming the file and the problem."""
        if self.audio_array is not None:
            x, sr = np.asarray(self.audio_array, dtype=np.float32), int(self.sample_rate or target_sr)
            where = f"<generated:{self.id}>"
        elif self.audio_path:
            x, sr = read_audio(self.audio_path)
            where = self.audio_path
            if self.sample_rate and sr != self.sample_rate:
                raise AudioError(where, f"manifest declares {self.sample_rate} Hz but the file is {sr} Hz")
        else:
            raise AudioError(None, f"utterance {self.id!r} has neither audio_path nor audio")
        validate_audio(x, sr, where)
        return resample(x, sr, target_sr)

    def to_record(self) -> dict[str, Any]:
        rec = asdict(self)
        rec.pop("audio_array")
        return {k: v for k, v in rec.items() if v not in (None, {}, "")}


def validate_audio(x: np.ndarray, sr: int, where: str, min_s: float = 0.1, max_s: float = 120.0) -> None:
    """Raise :class:`AudioError` for audio no benchmark should be run on."""
    if x.size == 0:
        raise AudioError(where, "no samples")
    if not np.all(np.isfinite(x)):
        raise AudioError(where, f"{int(np.sum(~np.isfinite(x)))} NaN/inf samples")
    dur = x.size / sr
    if dur < min_s:
        raise AudioError(where, f"too short: {dur:.3f} s (minimum {min_s} s)")
    if dur > max_s:
        raise AudioError(where, f"too long: {dur:.1f} s (maximum {max_s} s)")
    if not np.any(x):
        raise AudioError(where, "digital silence (all samples are zero)")


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


def load_utterances(
    data: str, split: str | None = None, limit: int | None = None, **options: Any
) -> list[Utterance]:
    """Utterances of a registered dataset or a manifest path, optionally one split and the first ``limit``."""
    registry = dataset_registry()
    if data in registry:
        utts = list(registry[data][0](**options))
    elif data.endswith(".jsonl") or Path(data).is_dir():
        utts = read_manifest(data)
    else:
        known = ", ".join(sorted(registry))
        raise ValueError(
            f"Unknown dataset {data!r}; known datasets: {known} (or pass a manifest .jsonl path)"
        )
    if split:
        utts = [u for u in utts if u.split == split]
    if limit is not None:
        utts = utts[:limit]
    return utts
