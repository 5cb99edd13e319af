"""Writing run files so that a failure never leaves half a file: atomic JSON, valid JSON, and one error type for
a disk that refuses (full, read-only, an I/O error), so the runner can stop cleanly and say so."""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path


class StorageError(Exception):
    """A run's files cannot be written (disk full, read-only, an I/O error). The run stops: what is on disk stays
    valid (finished utterances are kept; ``--resume`` continues once there is room)."""

    def __init__(self, path: str | Path, exc: OSError) -> None:
        self.path, self.errno = str(path), exc.errno
        what = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only"}.get(
            exc.errno, exc.strerror or str(exc)
        )
        super().__init__(f"cannot write {path}: {what} ({exc.strerror or exc})")


def json_safe(obj):
    """``obj`` with every NaN or infinity replaced by ``None``, so the JSON written is valid JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json_atomic(path: Path, obj: dict) -> None:
    """Write ``obj`` to ``path`` through a temporary file (never half a file); NaN/inf become ``null``.

    Raises :class:`StorageError` when the disk refuses, leaving no temporary file behind.
    """
    tmp = path.with_suffix(path.suffix + ".tmp")
    text = json.dumps(json_safe(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(path, exc) from None


def write_json_in_place(path: Path, obj: dict) -> None:
    """Last resort on a full disk: overwrite ``path`` in place (its blocks are already allocated, so a text no
    longer than the old one needs no new space). Raises :class:`StorageError` if even that fails."""
    text = (json.dumps(json_safe(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()
    try:
        with open(path, "r+b") as fh:
            fh.write(text)
            fh.truncate()
    except OSError as exc:
        raise StorageError(path, exc) from None
