"""A run's folder and life outside the timed loop: the ``--out`` check, the data identity it records, what a
resume keeps, signals that stop a run, and writing its final run.json even on a full disk.

The runner (:mod:`harness.runner`) measures; this module makes sure that what it measured is kept, that nothing
else is overwritten, and that run.json always says what happened to the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sys
import threading
from collections.abc import Collection
from pathlib import Path

from .data import Utterance
from .events import EventLog, read_events
from .latency import final_attempts, summarize
from .outcome import signal_name
from .results import now_iso
from .storage import StorageError, write_json_atomic, write_json_in_place


class RunError(Exception):
    """A run cannot start (bad arguments, a folder holding another run, a resume with other settings)."""


def data_identity_of_run(name: str, split: str | None, limit: int | None, utts: list[Utterance]) -> dict:
    """run.json's ``data``: the name and selection, a hash of every id with its audio sha256, and the set's
    identity (voices, synthesisers, manifest checksum, degraded or not) where the data has one."""
    h = hashlib.sha256()
    for u in utts:
        h.update(f"{u.id}\t{u.sha256 or ''}\n".encode())
    out = {"name": name, "split": split, "limit": limit, "n": len(utts), "ids_sha256": h.hexdigest()}
    from .datasets.identity import data_identity

    identity = data_identity(name)
    if identity is not None:
        out["identity"] = identity
    return out


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGINT, SIGTERM, SIGHUP); ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal_name(signum))


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP end the run the way Ctrl-C always did: run.json says ``interrupted`` with the
    summary of every finished utterance. A second signal while run.json is being written waits for it. Only the
    main thread can take signals; elsewhere this does nothing."""

    def __init__(self) -> None:
        self.finishing = False
        self.previous: dict = {}

    def _handler(self, signum, frame):  # noqa: ARG002 - the signal module's signature
        if not self.finishing:
            raise RunInterrupted(signum)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
                if sig is not None:
                    with contextlib.suppress(ValueError, OSError):
                        self.previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self.previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, old)


def check_out_dir(out_dir: Path, resume: bool) -> None:
    """Refuse an ``--out`` that would overwrite something that is not this kind of run, or cannot be written.

    A folder may be new, empty, or hold an s2s-bench run (which then needs ``--resume``, checked later); a file,
    a folder of other files or a foreign ``run.json`` is refused, and so is a folder that cannot be written.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise RunError(f"--out {out_dir} is a file, not a folder; choose a folder for the run")
    if out_dir.is_dir():
        meta_path = out_dir / "run.json"
        entries = sorted(p.name for p in out_dir.iterdir())
        if meta_path.exists():
            try:
                schema = json.loads(meta_path.read_text(encoding="utf-8")).get("schema", "")
            except (OSError, ValueError, AttributeError):
                schema = None
            if not str(schema or "").startswith("s2s-bench.run/"):
                raise RunError(
                    f"--out {out_dir} holds a run.json that is not an s2s-bench run (schema {schema!r}); "
                    "it would be overwritten: choose another --out"
                )
        elif entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise RunError(
                f"--out {out_dir} is not empty and holds no run (no run.json; it has {shown}); "
                + ("there is nothing to resume" if resume else "its files could be overwritten")
                + ": choose a new or empty folder"
            )
    parent = out_dir
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise RunError(f"--out {out_dir}: {parent} is a file, so the folder cannot be made")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".s2s-bench-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunError(
            f"--out {out_dir} cannot be written: {exc.strerror or exc}; choose another folder"
        ) from None


def retry_matches(retry: bool | Collection[str], status: str, kind: str | None) -> bool:
    if status == "ok" or not retry:
        return False
    return retry is True or status in retry or (kind is not None and kind in retry)


def resume_state(
    events: list[dict], retry_failed: bool | Collection[str]
) -> tuple[set[tuple[str, str]], dict[tuple[str, str], int]]:
    """From a run's events: the (backend, utterance) pairs a resume keeps, and the attempts made of each.

    An utterance is kept when its last finished attempt is ``ok``, or not ok and not to be retried; an output the
    disk refused (``storage``) is the harness's failure, not the backend's, and is always redone.
    """
    attempts: dict[tuple[str, str], int] = {}
    for ev in events:
        if "u" in ev:
            key = (ev["b"], ev["u"])
            attempts[key] = max(attempts.get(key, 0), ev.get("a", 1))
    done = set()
    for key, evs in final_attempts(events).items():
        end = next(e for e in evs if e["e"] == "utt_end")
        kind = next((e.get("kind") for e in evs if e["e"] == "error"), None)
        if kind != "storage" and not retry_matches(retry_failed, end.get("status"), kind):
            done.add(key)
    return done, attempts


def check_resumable(meta_path: Path, fresh: dict, specs: list[str]) -> dict:
    if not meta_path.exists():
        raise RunError(f"Cannot resume: {meta_path} is missing")
    old = json.loads(meta_path.read_text(encoding="utf-8"))
    old_specs = [b["key"] for b in old.get("backends", [])]
    old_data, new_data = dict(old.get("data") or {}), dict(fresh["data"])
    if "identity" not in old_data:  # a run from before data identities: compare what it has
        new_data.pop("identity", None)
    checks = [
        ("backends", old_specs, specs),
        ("settings", old.get("settings"), fresh["settings"]),
        ("data", old_data, new_data),
        ("suite", old.get("suite"), fresh["suite"]),
        ("vad", old.get("vad"), fresh.get("vad")),
        ("shard", _shard_of(old), _shard_of(fresh)),
    ]
    for what, was, now in checks:
        if was != now:
            raise RunError(f"Cannot resume {meta_path.parent}: {what} differ (the run has {was}, now {now})")
    return old


def _shard_of(meta: dict) -> str:
    """A run's shard as ``I/N`` (``whole`` for a run of every utterance), for resume's check."""
    shard = meta.get("shard")
    return f"{shard['index']}/{shard['count']}" if shard else "whole"


def degraded_warning(identity: dict) -> str:
    """The loud line a run on a degraded built-in set prints (and the report shows)."""
    return (
        f"data set {identity.get('name')} is DEGRADED: {identity.get('degraded_reason')}. Its utterances differ "
        "from the reference set's, so these numbers cannot be compared with runs on machines that have every "
        "voice (the committed baselines, the README); gates call such runs not comparable (x). Fix: "
        "scripts/install-system-deps.sh (as root), then `s2s-bench data build "
        f"{identity.get('name')} --force`."
    )


def finish_run(meta: dict, meta_path: Path, events_path: Path, log: EventLog) -> None:
    """Close the log and write run.json's final state; on a full disk, at least its status (in place)."""
    try:
        log.close()
    except StorageError as exc:
        if meta["status"] != "failed":
            meta["status"], meta["error"] = "failed", str(exc)
    meta["summary"] = summarize(read_events(events_path))
    meta["finished"] = now_iso()
    try:
        write_json_atomic(meta_path, meta)
    except StorageError:
        compact = {
            **meta,
            "summary": {},
            "summary_note": "not written (disk full): `s2s-bench rescore --write`",
        }
        try:
            write_json_in_place(meta_path, compact)
        except StorageError as exc:
            print(f"s2s-bench: could not record the run's end in {meta_path}: {exc}", file=sys.stderr)
