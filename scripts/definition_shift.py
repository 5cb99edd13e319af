"""How much each round-2 latency definition moves a run's figures: one run's event log, old code vs new code.

    python scripts/definition_shift.py RUN_DIR [--old-rev 7b80bfa] [--out shift.md]

The old definitions are the ``harness/latency.py`` and ``harness/stats.py`` of ``--old-rev`` (read with ``git
show`` and imported unchanged from a temporary folder); the new ones are this checkout's, through ``s2s-bench
rescore`` (speech ends re-derived from the inputs when the log lacks them). Both read the same events, so machine
noise cannot move the comparison. Statuses of a round-2 log are mapped back for the old code the way the old runner
wrote them (``no_answer`` -> ``ok``, ``truncated`` -> ``failed``).
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OLD_STATUS = {"no_answer": "ok", "truncated": "failed"}
ROUND_1 = "7b80bfa"
"""The last commit with the round-1 latency definitions (harness/latency.py before issue 13)."""


def old_latency(rev: str):
    """Import ``rev``'s harness/latency.py (with its stats.py) as a package of its own."""
    folder = Path(tempfile.mkdtemp(prefix="old-latency-")) / "old_harness"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for name in ("latency", "stats"):
        src = subprocess.run(
            ["git", "show", f"{rev}:harness/{name}.py"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        (folder / f"{name}.py").write_text(src)
    sys.path.insert(0, str(folder.parent))
    return importlib.import_module("old_harness.latency")


def _get(stat: dict | None, key: str = "p50") -> float | None:
    return None if not stat or stat.get(key) is None else float(stat[key])


def _f(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def rows_for(key: str, old: dict, new: dict, old_rows, new_rows) -> list[tuple[str, str, str, str]]:
    """(definition, round 1, round 2, change) rows for one backend."""
    out = []

    def add(name, a, b, digits=1):
        change = "" if a is None or b is None else f"{b - a:+.{digits}f}"
        out.append((name, _f(a, digits), _f(b, digits), change))

    n = new["n"]
    out.append(
        ("turns counted as answered", f"{old['n_ok']}/{n} ok", f"{new['n_answered']}/{n} answered", "")
    )
    out.append(
        (
            "no answer / truncated / failed",
            f"- / - / {old['n_failed']}",
            f"{new['n_no_answer']} / {new['n_truncated']} / {new['n_failed']}",
            "",
        )
    )
    for q in ("p50", "p95"):
        add(
            f"TTFA {q}: origin last push -> scheduled end of file (input lag)",
            _get(old["ttfa_ms"], q),
            _get(new["ttfa_eof_ms"], q),
        )
        add(
            f"TTFA {q}: origin end of file -> end of speech (trailing silence)",
            _get(new["ttfa_eof_ms"], q),
            _get(new["ttfa_ms"], q),
        )
        add(f"TTFA {q}: round 1 -> round 2 (both changes)", _get(old["ttfa_ms"], q), _get(new["ttfa_ms"], q))
        add(
            f"TTFA {q}: percentile over answered -> Kaplan-Meier over all turns",
            _get(new["ttfa_ms"], q),
            _get(new["ttfa_km"], q),
        )
    add("TTFA mean: round 1 -> round 2", _get(old["ttfa_ms"], "mean"), _get(new["ttfa_ms"], "mean"))
    add("TTFB p50", _get(old["ttfb_ms"]), _get(new["ttfb_ms"]))
    trailing = new["trailing_silence_ms"]
    out.append(
        (
            "trailing silence of the inputs (ms): p50, mean, max",
            "not measured",
            f"{_f(_get(trailing))}, {_f(_get(trailing, 'mean'))}, {_f(_get(trailing, 'max'))}",
            "",
        )
    )
    lag = new.get("input_lag_ms") or {}
    out.append(
        (
            "input lag max (ms), utterances flagged",
            "not measured",
            f"{_f(_get(lag, 'max'))}, {len(new['input_lagged'])}",
            "",
        )
    )
    add(
        "stalls per answered utterance (mean)",
        _get(old["stall_count"], "mean"),
        _get(new["stall_count"], "mean"),
        2,
    )
    add(
        "stall ms per answered utterance (mean)", _get(old["stall_ms"], "mean"), _get(new["stall_ms"], "mean")
    )
    old_stalls = {r.utt: r.stall_count for r in old_rows if r.backend == key and r.stall_count is not None}
    new_stalls = {r.utt: r.stall_count for r in new_rows if r.backend == key and r.stall_count is not None}
    differ = sum(old_stalls[u] != new_stalls[u] for u in set(old_stalls) & set(new_stalls))
    out.append(("utterances whose stall count changed", "", f"{differ} of {len(new_stalls)}", ""))
    add("RTF p50", _get(old["rtf"]), _get(new["rtf"]), 3)
    add("RTFx", old.get("rtfx"), new.get("rtfx"), 2)
    add(
        "start offset p50: round 1 `start_offset_ms` -> user-perceived `audio_start_from_source_start_ms`",
        _get(old.get("start_offset_ms")),
        _get(new["audio_start_from_source_start_ms"]),
    )
    add(
        "end offset p50: round 1 `end_offset_ms` -> user-perceived `audio_end_from_speech_end_ms`",
        _get(old.get("end_offset_ms")),
        _get(new["audio_end_from_speech_end_ms"]),
    )
    add(
        "start offset p50: round 1 -> SimulEval's StartOffset",
        _get(old.get("start_offset_ms")),
        _get(new["simuleval_start_offset_ms"]),
    )
    add(
        "end offset p50: round 1 -> SimulEval's EndOffset",
        _get(old.get("end_offset_ms")),
        _get(new["simuleval_end_offset_ms"]),
    )
    out.append(
        (
            "SimulEval ATD p50 / RTF p50 (new)",
            "",
            f"{_f(_get(new['simuleval_atd_ms']))} / {_f(_get(new['simuleval_rtf']), 3)}",
            "",
        )
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument(
        "--old-rev",
        default=ROUND_1,
        help=f"git revision holding the old definitions (default {ROUND_1}, the last one of round 1)",
    )
    p.add_argument("--out", default=None, help="also write the Markdown table here")
    args = p.parse_args(argv)

    from harness.latency import utterance_latencies
    from harness.rescore import derive_speech_ends, lacking_speech_end, rescore
    from harness.results import load_run

    run = load_run(args.run_dir)
    old_mod = old_latency(args.old_rev)
    old_events = [
        dict(e, status=OLD_STATUS.get(e["status"], e["status"])) if e.get("e") == "utt_end" else e
        for e in run.events
    ]
    old_summary = old_mod.summarize(old_events)
    old_rows = old_mod.utterance_latencies(old_events)
    new_summary, notes = rescore(run)
    lacking = lacking_speech_end(run.events)
    new_rows = utterance_latencies(run.events, derive_speech_ends(run.meta, lacking)[0] if lacking else None)
    lines = [
        f"Run `{run.path}` ({run.meta['data']['name']}, {run.meta['settings']['pacing']} pacing); old "
        f"definitions: `{args.old_rev}`.",
        *(f"Note: {n}." for n in notes),
        "",
    ]
    for key in new_summary:
        lines += [f"### {key}", "", "| definition | round 1 | round 2 | change |", "|---|---|---|---|"]
        for row in rows_for(key, old_summary[key], new_summary[key], old_rows, new_rows):
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
