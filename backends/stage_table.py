"""Stage breakdown of the baselines from a run's event log, as a Markdown table.

    python -m backends.stage_table runs/RUN_DIR

Every stage is a difference of two marks of the same utterance, on the harness's clock (the backend only says what
happened; the runner stamped when it saw it). Per stage the median over utterances (and min-max) is shown:

- ASR: ``asr_final`` - the end of speech
- LLM: ``llm_final`` - ``asr_final`` (the whole answer); LLM first token: ``llm_first_token`` - ``asr_final``
- TTS: ``tts_first_audio`` - ``llm_final`` (sequential: the whole answer spoken) or, in sentence mode,
  ``tts_first_audio`` - ``first_sentence`` (the first sentence spoken)
- Seamless: text pass ``text_final`` - the end of speech; speech pass ``tts_first_audio`` - ``text_final``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from harness.events import read_events
from harness.latency import utterance_latencies

SEED_GPU_MS = {"ASR": 300.0, "LLM": 500.0, "TTS": 2000.0}
"""The seed project's GPU figures for the sequential cascade (ms), shown next to ours for comparison."""

STAGES = (  # (column, later mark, earlier mark or None for the end of speech)
    ("ASR", "asr_final", None),
    ("LLM first token", "llm_first_token", "asr_final"),
    ("LLM", "llm_final", "asr_final"),
    ("TTS", "tts_first_audio", "llm_final"),
    ("TTS first sentence", "tts_first_audio", "first_sentence"),
    ("text pass", "text_final", None),
    ("speech pass", "tts_first_audio", "text_final"),
)


def stage_ms(marks: dict[str, float], later: str, earlier: str | None) -> float | None:
    """``marks[later] - marks[earlier]`` in ms (marks are relative to the end of speech); None if either is absent
    or the stage did not run in that order (e.g. TTS before llm_final in sentence mode)."""
    if later not in marks or (earlier is not None and earlier not in marks):
        return None
    value = marks[later] - (marks[earlier] if earlier else 0.0)
    return value if value >= 0 else None


def _cell(values: list[float]) -> str:
    if not values:
        return ""
    med = float(np.median(values))
    return f"{med:,.0f} ({min(values):,.0f}-{max(values):,.0f})" if len(values) > 1 else f"{med:,.0f}"


def stage_table(run_dir: str | Path) -> str:
    """The Markdown table for one run folder: a row per backend, medians with (min-max) in ms."""
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    latency_only = {b["key"]: b.get("latency_only", False) for b in meta.get("backends", [])}
    rows: dict[str, dict[str, list[float]]] = {}
    for res in utterance_latencies(read_events(run_dir / "events.jsonl")):
        if res.status == "failed":  # a silent (no_answer) or cut (truncated) turn still reached its stages
            continue
        row = rows.setdefault(res.backend, {})
        for column, later, earlier in STAGES:
            value = stage_ms(res.marks, later, earlier)
            if value is not None:
                row.setdefault(column, []).append(value)
        if res.ttfa_ms is not None:
            row.setdefault("TTFA", []).append(res.ttfa_ms)
    columns = [c for c, _, _ in STAGES if any(c in r for r in rows.values())] + ["TTFA"]
    lines = [
        "| backend | n | " + " | ".join(f"{c} (ms)" for c in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for key, row in rows.items():
        label = key + (" (random weights: latency only)" if latency_only.get(key) else "")
        n = max((len(v) for v in row.values()), default=0)
        lines.append(f"| {label} | {n} | " + " | ".join(_cell(row.get(c, [])) for c in columns) + " |")
    seed = " | ".join(f"{SEED_GPU_MS[c]:,.0f}" if c in SEED_GPU_MS else "" for c in columns)
    lines.append(f"| seed project, GPU (sequential cascade) | | {seed} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m backends.stage_table", description="stage breakdown of a run")
    p.add_argument("run_dir")
    print(stage_table(p.parse_args(argv).run_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
