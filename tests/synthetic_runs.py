"""Hand-built run folders in the documented format (docs/run-format.md), with chosen per-utterance latencies.

Synthetic on purpose: the numbers are planted by the test, so the report and gate can be checked against them
without timing anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

SR = 16000


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    x = np.asarray(values, dtype=float)
    out = {"n": len(x), "mean": float(x.mean()), "min": float(x.min()), "max": float(x.max())}
    for q in (50, 90, 95, 99):
        out[f"p{q}"] = float(np.percentile(x, q))
    out["mean_ci95"] = [float(x.mean() - 1), float(x.mean() + 1)]
    out["p50_ci95"] = [float(np.percentile(x, 40)), float(np.percentile(x, 60))]
    return out


def write_run(
    path: Path,
    backends: dict[str, dict[str, Any]],
    *,
    suite: str = "latency",
    data: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    machine: dict[str, Any] | None = None,
    run_id: str = "20261124-050000-test",
) -> Path:
    """Write run.json, events.jsonl (and scores.jsonl) for ``backends``.

    ``backends[key]`` holds ``ttfa`` (list of ms, one per utterance; ``None`` = failed utterance), optional
    ``silence_ms`` (silent output before the first audible chunk, so TTFB < TTFA), ``marks`` ({name: [ms, ...]}),
    ``scores`` ({metric: [value, ...]}), ``metrics`` (the summary's quality metrics), ``options`` and
    ``latency_only``. Backends are interleaved utterance by utterance, as the runner does.
    """
    path.mkdir(parents=True, exist_ok=True)
    n = max(len(spec["ttfa"]) for spec in backends.values())
    events: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    t = 1_000_000_000
    run_settings = settings or {
        "pacing": "fast",
        "chunk_ms": 20,
        "concurrency": 1,
        "timeout_s": 30,
        "seed": 0,
        "interleave": True,
        "prebuffer_ms": 0,
        "min_stall_ms": 1,
    }
    events.append({"e": "run", "t": t, "settings": run_settings, "resume": False})
    for i in range(n):
        utt = f"utt{i:03d}"
        for key, spec in backends.items():
            ttfa = spec["ttfa"][i]
            t0 = t
            events.append(
                {
                    "e": "utt_start",
                    "b": key,
                    "u": utt,
                    "a": 1,
                    "t": t0,
                    "in_sr": SR,
                    "out_sr": SR,
                    "in_samples": SR,
                    "audio_s": 1.0,
                }
            )
            events.append({"e": "push", "b": key, "u": utt, "a": 1, "t": t0, "n": SR})
            t_end = t0 + 1_000_000
            events.append({"e": "input_end", "b": key, "u": utt, "a": 1, "t": t_end})
            for name, vals in (spec.get("marks") or {}).items():
                events.append(
                    {"e": "mark", "b": key, "u": utt, "a": 1, "t": t_end + int(vals[i] * 1e6), "name": name}
                )
            if ttfa is None:
                events.append(
                    {
                        "e": "error",
                        "b": key,
                        "u": utt,
                        "a": 1,
                        "t": t_end + 5_000_000,
                        "kind": "crash",
                        "reason": "planted failure",
                    }
                )
                events.append(
                    {
                        "e": "utt_end",
                        "b": key,
                        "u": utt,
                        "a": 1,
                        "t": t_end + 5_000_000,
                        "status": "failed",
                        "out_samples": 0,
                    }
                )
            else:
                silence = spec.get("silence_ms", 0.0)
                first = 0
                if silence:
                    first = 160
                    events.append(
                        {
                            "e": "out",
                            "b": key,
                            "u": utt,
                            "a": 1,
                            "t": t_end + int((ttfa - silence) * 1e6),
                            "n": first,
                        }
                    )
                events.append(
                    {"e": "out", "b": key, "u": utt, "a": 1, "t": t_end + int(ttfa * 1e6), "n": 8000}
                )
                events.append({"e": "audible", "b": key, "u": utt, "a": 1, "s": first})
                events.append(
                    {
                        "e": "utt_end",
                        "b": key,
                        "u": utt,
                        "a": 1,
                        "t": t_end + int(ttfa * 1e6) + 1000,
                        "status": "ok",
                        "out_samples": first + 8000,
                    }
                )
            for metric, vals in (spec.get("scores") or {}).items():
                scores.append({"b": key, "u": utt, "metric": metric, "value": vals[i]})
            t += 2_000_000_000
    summary = {}
    for key, spec in backends.items():
        ok = [v for v in spec["ttfa"] if v is not None]
        summ: dict[str, Any] = {
            "n": n,
            "n_ok": len(ok),
            "n_failed": n - len(ok),
            "failures": [
                {"utt": f"utt{i:03d}", "kind": "crash", "reason": "planted failure"}
                for i, v in enumerate(spec["ttfa"])
                if v is None
            ],
            "ttfa_ms": _stats(ok),
            "ttfb_ms": _stats([v - spec.get("silence_ms", 0.0) for v in ok]),
            "rtf": _stats([0.1] * len(ok)),
            "stall_count": _stats([0] * len(ok)),
            "stall_ms": _stats([0.0] * len(ok)),
            "marks": {name: _stats(vals) for name, vals in (spec.get("marks") or {}).items()},
            "rtfx": 10.0,
        }
        if "metrics" in spec:
            summ["metrics"] = spec["metrics"]
        summary[key] = summ
    name = lambda key: key.split(":", 1)[0]  # noqa: E731
    meta = {
        "schema": "s2s-bench.run/1",
        "run_id": run_id,
        "created": "2026-11-24T05:00:00+00:00",
        "status": "complete",
        "suite": suite,
        "data": data or {"name": "synthetic", "split": "test", "limit": n, "n": n, "ids_sha256": "abc"},
        "settings": run_settings,
        "machine": machine
        or {
            "hostname": "test",
            "platform": "Linux",
            "cpu": "Test CPU",
            "cpu_count": 2,
            "memory_gb": 24.0,
            "python": "3.11.7",
            "gpu": None,
        },
        "versions": {"s2s-bench": "0.1.0", "numpy": np.__version__},
        "git": {"commit": "0" * 40, "dirty": False},
        "backends": [
            {
                "key": key,
                "name": name(key),
                "options": spec.get("options", {}),
                "input_sample_rate": SR,
                "output_sample_rate": SR,
                "streaming": True,
                "latency_only": spec.get("latency_only", False),
            }
            for key, spec in backends.items()
        ],
        "summary": summary,
    }
    (path / "run.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    if scores:
        (path / "scores.jsonl").write_text("".join(json.dumps(s) + "\n" for s in scores), encoding="utf-8")
    return path


def jittered(center_ms: float, n: int = 20, spread_ms: float = 5.0, seed: int = 0) -> list[float]:
    """``n`` latencies around ``center_ms`` (uniform +- ``spread_ms``), reproducible by ``seed``."""
    rng = np.random.default_rng(seed)
    return [float(v) for v in center_ms + rng.uniform(-spread_ms, spread_ms, n)]
