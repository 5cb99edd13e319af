"""Split one run folder into several, one per group of its backends, with the backends renamed.

``s2s-bench gate --against`` measures both sides of a gate in **one** run (each side's backend served on
127.0.0.1 and measured through ``remote``, interleaved), then splits it into a ``base`` and a ``candidate`` run
folder in which each backend carries the key it was asked for (``custom``, not ``remote:url=ws://...``). The split
folders are ordinary run folders (``docs/run-format.md``): ``s2s-bench report``, ``gate``, ``rescore --check`` and
the suites read them as they read any run. Nothing is re-measured: the events are the combined run's, filtered and
renamed; the summary is recomputed from them by ``harness.latency`` exactly as ``rescore`` would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .events import _line, read_events
from .latency import summarize
from .results import slug
from .storage import write_json_atomic


def split_run(
    src: str | Path,
    dst: str | Path,
    keys: dict[str, str],
    backends: list[dict[str, Any]],
    meta_update: dict[str, Any] | None = None,
    move_audio: bool = True,
) -> Path:
    """Write the run folder ``dst`` holding the backends ``keys`` (``{key in src: key in dst}``) of ``src``.

    ``backends`` are the ``run.json`` records of the new folder (each with its new ``key``); ``meta_update`` is
    merged into its metadata (e.g. the git commit a side was served from). Output audio is moved (or copied with
    ``move_audio=False``) into ``dst/outputs/<new key>/``. Raises ``ValueError`` when a key is not in ``src``.
    """
    src, dst = Path(src), Path(dst)
    meta = json.loads((src / "run.json").read_text(encoding="utf-8"))
    present = {b["key"] for b in meta.get("backends", [])}
    missing = [k for k in keys if k not in present]
    if missing:
        raise ValueError(
            f"Cannot split {src}: backend {missing[0]!r} is not in it (it has {sorted(present)})"
        )
    if {b["key"] for b in backends} != set(keys.values()):
        raise ValueError(f"Expected a backend record for each of {sorted(keys.values())}")
    dst.mkdir(parents=True, exist_ok=True)
    events = []
    for ev in read_events(src / "events.jsonl"):
        if "b" in ev:
            if ev["b"] not in keys:
                continue
            ev = {**ev, "b": keys[ev["b"]]}
        events.append(ev)
    (dst / "events.jsonl").write_text("".join(_line(ev) + "\n" for ev in events), encoding="utf-8")
    for old, new in keys.items():
        folder = src / "outputs" / slug(old)
        if folder.is_dir():
            target = dst / "outputs" / slug(new)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            (shutil.move if move_audio else shutil.copytree)(str(folder), str(target))
    order = {new: i for i, new in enumerate(keys.values())}
    meta["run_id"] = dst.name
    meta.update(meta_update or {})
    meta["backends"] = sorted(backends, key=lambda b: order[b["key"]])
    meta["split_from"] = {"run": str(src), "keys": keys}
    meta["summary"] = summarize(events)
    write_json_atomic(dst / "run.json", meta)
    return dst
