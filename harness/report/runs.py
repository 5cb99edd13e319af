"""Run folders as the report and the gate see them: metadata, summaries and per-utterance samples.

This module is the one place that turns a run folder (``docs/run-format.md``) into per-utterance values. Latency
values come from the event log through ``harness.latency`` (the module that defines them), so the report, the gate
and ``s2s-bench rescore`` never disagree on what a number means.

Quality values come from ``scores.jsonl``. Each line names the backend ``b`` and utterance ``u`` and carries the
values in one of three shapes: ``{"metric": "wer", "value": 0.2}``, ``{"metrics": {"wer": 0.2, ...}}`` or flat
numeric fields (``{"wer": 0.2, "cer": 0.1}``). The last value written for a (backend, utterance, metric) wins.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import latency
from ..events import read_events
from ..latency import utterance_latencies
from ..rescore import derive_speech_ends, lacking_speech_end

LATENCY_METRICS = (*latency.LATENCY_METRICS, "wait_limit_ms")
"""Per-utterance latency values of a run's samples: harness.latency's metrics and where a turn is censored."""

__all__ = ["LATENCY_METRICS", "RunData", "RunFormatError", "load_run_folder", "read_scores"]

_SCORE_KEYS = {"b", "u", "a", "e", "t", "metric", "value", "metrics", "utt", "backend", "unit", "reason"}


class RunFormatError(ValueError):
    """A run folder or baseline file is missing or does not follow ``docs/run-format.md``."""


@dataclass
class RunData:
    """One run (or a saved baseline): its metadata and per-backend per-utterance samples.

    ``samples[backend_key][metric][utt_id]`` is a float (ms for latency metrics, see :data:`LATENCY_METRICS`;
    ``wait_limit_ms`` is where an unanswered turn is censored), ``status[backend_key][utt_id]`` is ``ok``,
    ``no_answer``, ``truncated`` or ``failed``; marks appear as metrics ``mark.<name>`` (ms after the end of
    speech).
    """

    source: str
    meta: dict[str, Any]
    samples: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    status: dict[str, dict[str, str]] = field(default_factory=dict)
    run_dir: Path | None = None

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.source)

    @property
    def backend_keys(self) -> list[str]:
        return [b["key"] for b in self.meta.get("backends", [])]

    def backend(self, key: str) -> dict[str, Any]:
        for b in self.meta.get("backends", []):
            if b["key"] == key:
                return b
        raise KeyError(key)

    def summary(self, key: str) -> dict[str, Any]:
        return (self.meta.get("summary") or {}).get(key) or {}

    def latency_only(self, key: str) -> bool:
        return bool(self.backend(key).get("latency_only"))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file such as ``scores.jsonl``; a truncated last line is skipped, other bad lines are errors."""
    events = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if lineno == len(lines):
                break
            raise RunFormatError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return events


def read_scores(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """``scores.jsonl`` as ``{backend: {metric: {utt: value}}}`` (see the module docstring for line shapes)."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    if not path.exists():
        return {}
    for rec in read_jsonl(path):
        b, u = rec.get("b", rec.get("backend")), rec.get("u", rec.get("utt"))
        if b is None or u is None:
            continue
        if "metric" in rec:
            pairs = [(rec["metric"], rec.get("value"))]
        elif isinstance(rec.get("metrics"), dict):
            pairs = list(rec["metrics"].items())
        else:
            pairs = [(k, v) for k, v in rec.items() if k not in _SCORE_KEYS]
        for name, value in pairs:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                out[b][name][u] = float(value)
    return {b: dict(m) for b, m in out.items()}


def load_run_folder(run_dir: str | Path) -> RunData:
    """Read a run folder: ``run.json``, ``events.jsonl`` and (when present) ``scores.jsonl``."""
    run_dir = Path(run_dir)
    meta_path = run_dir / "run.json"
    if not meta_path.exists():
        raise RunFormatError(f"{run_dir} is not a run folder: {meta_path.name} is missing")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunFormatError(f"{meta_path}: not valid JSON ({exc.msg})") from None
    if not str(meta.get("schema", "")).startswith("s2s-bench.run/"):
        raise RunFormatError(f"{meta_path}: expected schema s2s-bench.run/1 but got {meta.get('schema')!r}")
    events_path = run_dir / "events.jsonl"
    events = read_events(events_path)  # the core's reader: the same events as `s2s-bench rescore` sees
    data = RunData(source=str(run_dir), meta=meta, run_dir=run_dir)
    lacking = lacking_speech_end(events)
    speech_ends = derive_speech_ends(meta, lacking)[0] if lacking else {}  # as `s2s-bench rescore` does
    for res in sorted(utterance_latencies(events, speech_ends), key=lambda r: (r.backend, r.utt)):
        data.status.setdefault(res.backend, {})[res.utt] = res.status
        per = data.samples.setdefault(res.backend, {})
        values = {m: getattr(res, m) for m in LATENCY_METRICS}
        values.update({f"mark.{name}": v for name, v in res.marks.items()})
        for name, value in values.items():
            if value is not None and math.isfinite(value):
                per.setdefault(name, {})[res.utt] = float(value)
    for b, metrics in read_scores(run_dir / "scores.jsonl").items():
        for name, vals in metrics.items():
            data.samples.setdefault(b, {}).setdefault(name, {}).update(vals)
    for key in data.backend_keys:
        data.samples.setdefault(key, {})
        data.status.setdefault(key, {})
    return data
