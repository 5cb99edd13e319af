"""The report's turn-taking section: one row per run x backend x scenario (harness.turns.metrics)."""

from __future__ import annotations

import pandas as pd

from .runs import RunData
from .tables import label


def _rate(r: dict | None) -> str:
    if not r or not r.get("n"):
        return ""
    ci = r.get("ci95")
    return f"{r['value']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}] {r['k']}/{r['n']}" if ci else f"{r['k']}/{r['n']}"


def _ms(stat: dict | None, key: str = "p50") -> str:
    if not stat or not stat.get("n"):
        return ""
    ci = stat.get(f"{key}_ci95")
    text = f"{stat[key]:.0f}" + (f" [{ci[0]:.0f}, {ci[1]:.0f}]" if ci else "")
    return f"{text} n={stat['n']}"


COLUMNS = {
    "takeover (FDB TOR)": ("takeover_rate", _rate),
    "response latency ms, mean (FDB)": ("response_latency_ms", lambda s: _ms(s, "mean")),
    "response latency ms, p50": ("response_latency_ms", _ms),
    "endpoint ms, p50": ("endpoint_ms", _ms),
    "early endpoint": ("early_endpoint_rate", _rate),
    "pause takeover (FDB TOR)": ("pause_takeover_rate", _rate),
    "spoke in pause": ("spoke_in_pause_rate", _rate),
    "yielded": ("yielded_rate", _rate),
    "stopped by interruption": ("stopped_by_interruption_rate", _rate),
    "time to yield ms, p50": ("time_to_yield_ms", _ms),
    "stop latency ms, mean (FDB v1.5)": ("stop_latency_ms", lambda s: _ms(s, "mean")),
    "answers interruption": ("answers_interruption_rate", _rate),
    "interrupt latency ms, mean (FDB)": ("interrupt_latency_ms", lambda s: _ms(s, "mean")),
    "stopped at backchannel": ("stopped_at_backchannel_rate", _rate),
    "resumed after it": ("resumed_after_backchannel_rate", _rate),
    "false stops at backchannels": ("false_stop_rate", _rate),
}


def has_turns(runs: list[RunData]) -> bool:
    return any(run.summary(k).get("turns") for run in runs for k in run.backend_keys)


def turns_frame(runs: list[RunData]) -> pd.DataFrame:
    """Rates as value [95% Wilson CI] k/n, times in ms as p50 (or mean) [95% bootstrap CI] n; empty cells: does
    not apply to the scenario or nothing to count."""
    rows = []
    several = len(runs) > 1
    for run in runs:
        for key in run.backend_keys:
            turns = run.summary(key).get("turns")
            if not turns:
                continue
            for scenario, s in turns["scenarios"].items():
                row = {
                    "backend": label(run, key, several),
                    "endpointing": turns["endpointing"],
                    "scenario": scenario,
                    "n": s["n"] - s["n_failed"],
                }
                for title, (field, fmt) in COLUMNS.items():
                    row[title] = fmt(s.get(field))
                rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.loc[:, (frame != "").any(axis=0)] if not frame.empty else frame


def turns_note(runs: list[RunData]) -> str:
    endpointers = {
        f"{r.meta['endpointer']['method']} hangover {r.meta['endpointer']['hangover_ms']:g} ms, min speech "
        f"{r.meta['endpointer']['min_speech_ms']:g} ms, barge-in {'on' if r.meta['endpointer']['barge_in'] else 'off'}"
        for r in runs
        if r.meta.get("endpointer")
    }
    text = (
        "Turn-taking scenarios (harness.turns): endpointing=oracle means the harness said when the user's turn was "
        "over (the end of the file); system means it never did and the system, or the endpointer adapter in front "
        "of a backend that cannot tell for itself, decided. FDB = Full-Duplex-Bench's definition, fed with the "
        "system's audible stretches where FDB uses ASR words."
    )
    if endpointers:
        text += " Endpointer adapter: " + "; ".join(sorted(endpointers)) + "."
    return text
