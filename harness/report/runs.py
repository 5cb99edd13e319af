"""Run folders as the report and the gate see them: metadata, summaries and per-utterance samples.

This module is the one place that turns a run folder (``docs/run-format.md``) into per-utterance values. Latency
values come from the event log through :func:`utterance_latency`, which uses ``harness.latency`` when it provides
per-utterance metrics and otherwise a small fallback over the documented events (TTFA, TTFB, stage marks), so the
report and the gate never disagree on what a number means.

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

#: Per-utterance latency metrics, in the order reports show them. Units: ms, except ``rtf`` (ratio) and
#: ``stall_count`` (count).
LATENCY_METRICS = ("ttfa_ms", "ttfb_ms", "rtf", "start_offset_ms", "end_offset_ms", "stall_count", "stall_ms")

_SCORE_KEYS = {"b", "u", "a", "e", "t", "metric", "value", "metrics", "utt", "backend", "unit", "reason"}


class RunFormatError(ValueError):
    """A run folder or baseline file is missing or does not follow ``docs/run-format.md``."""


@dataclass
class RunData:
    """One run (or a saved baseline): its metadata and per-backend per-utterance samples.

    ``samples[backend_key][metric][utt_id]`` is a float (ms for latency metrics, see :data:`LATENCY_METRICS`),
    ``status[backend_key][utt_id]`` is ``"ok"`` or ``"failed"``; marks appear as metrics ``mark.<name>`` (ms after
    input end).
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


def read_events(path: Path) -> list[dict[str, Any]]:
    """Events of ``events.jsonl``; a truncated last line (a killed run) is skipped, other bad lines are errors."""
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


def final_attempts(events: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Events of the attempt that counts for each (backend, utterance): the last one that has ``utt_end``."""
    by_attempt: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for ev in events:
        if "b" in ev and "u" in ev:
            by_attempt[(ev["b"], ev["u"], int(ev.get("a", 1)))].append(ev)
    chosen: dict[tuple[str, str], tuple[int, list[dict[str, Any]]]] = {}
    for (b, u, a), evs in by_attempt.items():
        finished = any(e.get("e") == "utt_end" for e in evs)
        if finished and ((b, u) not in chosen or a > chosen[(b, u)][0]):
            chosen[(b, u)] = (a, evs)
    return {k: v[1] for k, v in chosen.items()}


def _fallback_latency(evs: list[dict[str, Any]]) -> dict[str, float | None]:
    """TTFA, TTFB and marks (ms after input end) of one attempt, straight from the documented events."""
    t_end = next((e["t"] for e in evs if e.get("e") == "input_end"), None)
    outs = [e for e in evs if e.get("e") == "out" and e.get("n", 0) > 0]
    audible = next((e.get("s") for e in evs if e.get("e") == "audible"), None)
    values: dict[str, float | None] = {m: None for m in LATENCY_METRICS}
    if t_end is None:
        return values
    if outs:
        values["ttfb_ms"] = (outs[0]["t"] - t_end) / 1e6
    if audible is not None:
        seen = 0
        for e in outs:
            seen += e["n"]
            if seen > audible:
                values["ttfa_ms"] = (e["t"] - t_end) / 1e6
                break
    for e in evs:
        if e.get("e") == "mark" and f"mark.{e['name']}" not in values:
            values[f"mark.{e['name']}"] = (e["t"] - t_end) / 1e6
    return values


def utterance_latency(evs: list[dict[str, Any]], settings: dict[str, Any] | None = None) -> dict[str, float | None]:
    """Per-utterance latency metrics of one attempt's events: :data:`LATENCY_METRICS` plus ``mark.<name>``.

    Uses ``harness.latency.utterance_metrics`` when the core provides it (so numbers are computed once, by the
    module that defines them); values are ms except ``rtf`` and ``stall_count``; ``None`` where undefined.
    """
    try:
        from harness import latency as core
    except ImportError:
        core = None
    func = getattr(core, "utterance_metrics", None) if core else None
    if func is None:
        return _fallback_latency(evs)
    raw = func(evs, **({"settings": settings} if settings is not None else {}))
    values: dict[str, float | None] = {m: raw.get(m) for m in LATENCY_METRICS}
    for name, v in (raw.get("marks") or {}).items():
        values[f"mark.{name}"] = v
    return values


def read_scores(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """``scores.jsonl`` as ``{backend: {metric: {utt: value}}}`` (see the module docstring for line shapes)."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    if not path.exists():
        return {}
    for rec in read_events(path):
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
    events = read_events(events_path) if events_path.exists() else []
    data = RunData(source=str(run_dir), meta=meta, run_dir=run_dir)
    settings = meta.get("settings") or {}
    for (b, u), evs in sorted(final_attempts(events).items()):
        end = next(e for e in evs if e.get("e") == "utt_end")
        data.status.setdefault(b, {})[u] = end.get("status", "ok")
        per = data.samples.setdefault(b, {})
        for name, value in utterance_latency(evs, settings).items():
            if value is not None and math.isfinite(value):
                per.setdefault(name, {})[u] = float(value)
    for b, metrics in read_scores(run_dir / "scores.jsonl").items():
        for name, vals in metrics.items():
            data.samples.setdefault(b, {}).setdefault(name, {}).update(vals)
    for key in data.backend_keys:
        data.samples.setdefault(key, {})
        data.status.setdefault(key, {})
    return data
