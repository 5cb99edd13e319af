"""Report tables (pandas): the per-backend summary, the per-utterance table, machine and version info.

Cells are strings meant for people: a value, its 95% confidence interval in brackets and its sample count
(``412 ms [398, 430] n=20``), or ``n/a (reason)`` where there is no value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import stats
from ..latency import ANSWERED, km_ttfa
from .runs import LATENCY_METRICS, RunData

LATENCY_ONLY = "random weights: latency only"


def bootstrap_ci(values: np.ndarray, stat: str) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of ``stat`` (``mean`` or ``pNN``) over ``values``; None below 2 values.

    ``harness.stats.bootstrap_ci``: the same interval as the run's summary, so a report is reproducible from its
    runs.
    """
    ci = stats.bootstrap_ci(np.asarray(values, dtype=float), stat)
    return (ci[0], ci[1]) if ci else None


def label(run: RunData, key: str, several_runs: bool) -> str:
    """How a (run, backend) is named in tables and plot legends."""
    return f"{key} ({run.run_id})" if several_runs else key


def _cell(
    value: float | None, ci: tuple[float, float] | list | None, n: int, unit: str, digits: int = 1
) -> str:
    if value is None:
        return "n/a (no samples)"
    u = f" {unit}" if unit else ""
    text = f"{value:.{digits}f}{u}"
    if ci is not None and len(ci) == 2 and None not in ci:
        text += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    return text + f" n={n}"


def _stat_cell(
    run: RunData, key: str, metric: str, stat: str, unit: str, digits: int = 1, reason: str = ""
) -> str:
    """A latency statistic from the per-utterance samples, with a bootstrap CI (or the summary's, for p50/mean)."""
    vals = np.array(list((run.samples.get(key) or {}).get(metric, {}).values()), dtype=float)
    if vals.size == 0:
        return f"n/a ({reason or 'not measured'})"
    value = float(vals.mean()) if stat == "mean" else float(np.percentile(vals, float(stat[1:])))
    return _cell(value, bootstrap_ci(vals, stat), int(vals.size), unit, digits)


def quality_metric_names(runs: list[RunData]) -> list[str]:
    """Quality metrics present in any run (summary ``metrics`` or ``scores.jsonl``), in a stable order."""
    names: list[str] = []
    for run in runs:
        for key in run.backend_keys:
            for name in run.summary(key).get("metrics") or {}:
                if name not in names:
                    names.append(name)
            for name in run.samples.get(key, {}):
                if name not in LATENCY_METRICS and not name.startswith("mark.") and name not in names:
                    names.append(name)
    return names


def quality_value(run: RunData, key: str, name: str) -> tuple[float | None, Any, int, str]:
    """(value, ci95, n, reason) of a quality metric: the summary's corpus value, else the mean of the scores."""
    info = (run.summary(key).get("metrics") or {}).get(name)
    if info is not None and not isinstance(info, dict):
        return None, None, 0, f"unreadable summary entry {info!r}"
    if info is not None:
        if info.get("value") is None:
            return None, None, 0, info.get("reason") or "not computed"
        return float(info["value"]), info.get("ci95"), int(info.get("n") or 0), ""
    vals = np.array(list((run.samples.get(key) or {}).get(name, {}).values()), dtype=float)
    if vals.size == 0:
        return None, None, 0, "not measured in this run"
    return float(vals.mean()), bootstrap_ci(vals, "mean"), int(vals.size), ""


def answered_cell(run: RunData, key: str) -> str:
    """``answered/n (rate%) [95% Wilson interval]``: turns with an audible answer (ok or truncated)."""
    statuses = list((run.status.get(key) or {}).values())
    if not statuses:
        return "n/a (no utterances)"
    k, n = sum(s in ANSWERED for s in statuses), len(statuses)
    lo, hi = stats.wilson_ci(k, n)
    return f"{k}/{n} ({100 * k / n:.0f}%) [{100 * lo:.0f}, {100 * hi:.0f}]"


def km_cell(run: RunData, key: str, q: int) -> str:
    """The Kaplan-Meier TTFA quantile over all turns (unanswered ones censored at their wait limit), with CI."""
    per = run.samples.get(key) or {}
    ttfa, wait = per.get("ttfa_ms", {}), per.get("wait_limit_ms", {})
    turns = [(ttfa.get(u), s in ANSWERED, wait.get(u)) for u, s in (run.status.get(key) or {}).items()]
    km = km_ttfa(turns)
    if not km.get("n"):
        return "n/a (no wait limit in these events)"
    value, ci = km.get(f"p{q}"), km.get(f"p{q}_ci95")
    text = f"{value:.1f}" if value is not None else "not reached"
    if ci:
        text += f" [{ci[0]:.1f}, {f'{ci[1]:.1f}' if ci[1] is not None else 'not reached'}]"
    return text + f" n={km['n']}"


def summary_frame(runs: list[RunData]) -> pd.DataFrame:
    """One row per (run, backend): answer rate, latency with CIs, failures, stalls and every quality metric.

    RTFx (input seconds per wall second) is left out for realtime pacing, where the speaker sets the pace and it
    says nothing about the backend: no column when every run is realtime, ``n/a (realtime pacing)`` otherwise."""
    several = len(runs) > 1
    quality = quality_metric_names(runs)
    all_realtime = all((r.meta.get("settings") or {}).get("pacing") == "realtime" for r in runs)
    rows = []
    for run in runs:
        for key in run.backend_keys:
            summ = run.summary(key)
            statuses = list((run.status.get(key) or {}).values())
            n_failed = sum(s == "failed" for s in statuses)
            row: dict[str, Any] = {"backend": label(run, key, several)}
            row["answered"] = answered_cell(run, key) + _not_run(run, len(statuses))
            never = "never audible" if (run.samples.get(key) or {}).get("ttfb_ms") else "no output"
            row["TTFA p50 (ms)"] = _stat_cell(run, key, "ttfa_ms", "p50", "", reason=never)
            row["TTFA p95 (ms)"] = _stat_cell(run, key, "ttfa_ms", "p95", "", reason=never)
            row["TTFA KM p50 (ms)"] = km_cell(run, key, 50)
            row["TTFA KM p95 (ms)"] = km_cell(run, key, 95)
            row["TTFA p50 from end of file (ms)"] = _stat_cell(
                run, key, "ttfa_eof_ms", "p50", "", reason=never
            )
            row["TTFB p50 (ms)"] = _stat_cell(run, key, "ttfb_ms", "p50", "", reason="no output")
            row["RTF mean"] = _stat_cell(
                run, key, "rtf", "mean", "", digits=3, reason="not in this run's events"
            )
            if (run.meta.get("settings") or {}).get("pacing") == "realtime":
                if not all_realtime:  # RTFx of realtime input is bounded by the speaker: it says nothing
                    row["RTFx"] = "n/a (realtime pacing)"
            else:
                row["RTFx"] = (
                    f"{summ['rtfx']:.1f}"
                    if isinstance(summ.get("rtfx"), (int, float))
                    else "n/a (not in summary)"
                )
            row["stalls mean"] = _stat_cell(
                run, key, "stall_count", "mean", "", digits=2, reason="not in this run's events"
            )
            row["stall ms p95"] = _stat_cell(
                run, key, "stall_ms", "p95", "", reason="not in this run's events"
            )
            lags = (run.samples.get(key) or {}).get("input_lag_ms", {})
            flag = float((run.meta.get("settings") or {}).get("input_lag_flag_ms", 20.0))
            row["input lagged"] = (
                f"{sum(v > flag for v in lags.values())} (max {max(lags.values()):.0f} ms)" if lags else "n/a"
            )
            row["no answer"] = str(sum(s == "no_answer" for s in statuses))
            row["truncated"] = str(sum(s == "truncated" for s in statuses))
            row["failures"] = _failures(summ, n_failed)
            for name in quality:
                if run.latency_only(key):
                    row[name] = LATENCY_ONLY
                    continue
                value, ci, n, reason = quality_value(run, key, name)
                row[name] = f"n/a ({reason})" if value is None else _cell(value, ci, n, "", digits=3)
            if not quality:
                row["quality"] = (
                    LATENCY_ONLY if run.latency_only(key) else "n/a (no quality suite in these runs)"
                )
            rows.append(row)
    return pd.DataFrame(rows)


def speech_end_frame(runs: list[RunData]) -> pd.DataFrame:
    """Per run: how the end of speech was found and how much trailing silence the inputs have (TTFA from the
    end of the file would count it as the system's latency)."""
    rows = []
    for run in runs:
        trailing: dict[str, float] = {}
        for key in run.backend_keys:
            trailing.update((run.samples.get(key) or {}).get("trailing_silence_ms", {}))
        vad = run.meta.get("vad") or {}
        method = f"{vad.get('method')} {vad.get('version')}" if vad else "not recorded (run before round 2)"
        row: dict[str, Any] = {"run": run.run_id, "VAD": method, "inputs": len(trailing)}
        if trailing:
            vals = np.array(list(trailing.values()))
            row["trailing silence p50 (ms)"] = f"{np.percentile(vals, 50):.0f}"
            row["p90 (ms)"] = f"{np.percentile(vals, 90):.0f}"
            row["max (ms)"] = f"{vals.max():.0f}"
            row["mean (ms)"] = f"{vals.mean():.0f}"
            row[">= 100 ms"] = f"{int((vals >= 100).sum())}/{vals.size}"
        rows.append(row)
    return pd.DataFrame(rows)


def _failures(summ: dict[str, Any], n_failed: int) -> str:
    if not n_failed:
        return "0"
    kinds: dict[str, int] = {}
    for f in summ.get("failures") or []:
        kinds[f.get("kind", "?")] = kinds.get(f.get("kind", "?"), 0) + 1
    detail = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    return f"{n_failed} ({detail})" if detail else str(n_failed)


def utterance_frame(runs: list[RunData]) -> pd.DataFrame:
    """One row per (run, backend, utterance) with every per-utterance value (latency in ms, marks, quality)."""
    rows = []
    for run in runs:
        for key in run.backend_keys:
            per = run.samples.get(key) or {}
            for utt, status in sorted(run.status.get(key, {}).items()):
                row: dict[str, Any] = {"run": run.run_id, "backend": key, "utterance": utt, "status": status}
                for metric, vals in per.items():
                    if (
                        run.latency_only(key)
                        and metric not in LATENCY_METRICS
                        and not metric.startswith("mark.")
                    ):
                        continue
                    row[metric] = vals.get(utt)
                rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    fixed = ["run", "backend", "utterance", "status"]
    latency = [m for m in LATENCY_METRICS if m in frame.columns]
    marks = sorted(c for c in frame.columns if c.startswith("mark."))
    rest = [c for c in frame.columns if c not in fixed + latency + marks]
    return frame[fixed + latency + marks + rest]


def failures_frame(runs: list[RunData]) -> pd.DataFrame:
    """Every failed or truncated utterance with its kind and reason, as recorded in the summaries."""
    rows = []
    for run in runs:
        for key in run.backend_keys:
            summ = run.summary(key)
            for status, field in (("failed", "failures"), ("truncated", "truncated")):
                for f in summ.get(field) or []:
                    rows.append(
                        {
                            "run": run.run_id,
                            "backend": key,
                            "utterance": f.get("utt"),
                            "status": status,
                            "kind": f.get("kind"),
                            "reason": f.get("reason"),
                        }
                    )
    return pd.DataFrame(rows, columns=["run", "backend", "utterance", "status", "kind", "reason"])


def _not_run(run: RunData, n_finished: int) -> str:
    """``, 8 of 10 not run (run interrupted by SIGTERM)`` for a run that stopped early; empty otherwise."""
    planned = (run.meta.get("data") or {}).get("n")
    status = run.meta.get("status")
    if status == "complete" and (not isinstance(planned, int) or n_finished >= planned):
        return ""
    why = {
        "running": "run still going, or killed",
        "interrupted": f"run interrupted by {run.meta.get('interrupted_by') or 'a signal'}",
        "failed": f"run failed: {run.meta.get('error') or 'see run.json'}",
    }.get(str(status), f"run {status}")
    if isinstance(planned, int) and planned > n_finished:
        return f", {planned - n_finished} of {planned} NOT RUN ({why})"
    return f" ({why})"


def run_info_frame(runs: list[RunData]) -> pd.DataFrame:
    """Machine, versions, data, settings and backend options of each run, one column per run."""
    cols = {}
    for run in runs:
        m, d, s = run.meta.get("machine") or {}, run.meta.get("data") or {}, run.meta.get("settings") or {}
        info = {
            "created": run.meta.get("created"),
            "status": run.meta.get("status")
            + (f" ({run.meta['interrupted_by']})" if run.meta.get("interrupted_by") else "")
            + (f": {run.meta['error']}" if run.meta.get("error") else ""),
            "suite": run.meta.get("suite"),
            "data": f"{d.get('name')} split={d.get('split')} n={d.get('n')} ids_sha256={str(d.get('ids_sha256'))[:12]}"
            + _identity_text(d.get("identity")),
            "settings": ", ".join(f"{k}={v}" for k, v in s.items()),
            "machine": f"{m.get('cpu')} x{m.get('cpu_count')}, {m.get('memory_gb')} GB, GPU: {m.get('gpu') or 'none'}",
            "platform": f"{m.get('platform')} (host {m.get('hostname')}), Python {m.get('python')}",
            "versions": ", ".join(f"{k} {v}" for k, v in (run.meta.get("versions") or {}).items()),
            "git": "{} {}".format(
                str((run.meta.get("git") or {}).get("commit"))[:12],
                "(dirty)" if (run.meta.get("git") or {}).get("dirty") else "",
            ),
        }
        for b in run.meta.get("backends", []):
            opts = ", ".join(f"{k}={v}" for k, v in (b.get("options") or {}).items()) or "defaults"
            extra = f"; {LATENCY_ONLY}" if b.get("latency_only") else ""
            info[f"backend {b['key']}"] = f"{opts}; {'streaming' if b.get('streaming') else 'offline'}{extra}"
        cols[run.run_id] = info
    return pd.DataFrame(cols)


def _identity_text(identity: dict | None) -> str:
    if not isinstance(identity, dict):
        return ""
    text = (
        f"; set {str(identity.get('manifest_sha256'))[:12]}, voices {', '.join(identity.get('voices') or [])}"
    )
    if identity.get("degraded"):
        text += f"; DEGRADED: {identity.get('degraded_reason')}"
    return text


def stage_means(run: RunData, key: str) -> list[tuple[str, float]]:
    """Mean time of each stage mark after the end of speech (ms), in time order, then TTFA: ``[(name, ms), ...]``."""
    per = run.samples.get(key) or {}
    marks = [
        (m[len("mark.") :], float(np.mean(list(v.values()))))
        for m, v in per.items()
        if m.startswith("mark.") and v
    ]
    if not marks:
        return []
    marks.sort(key=lambda p: p[1])
    if per.get("ttfa_ms"):
        marks.append(("first audio (TTFA)", float(np.mean(list(per["ttfa_ms"].values())))))
    return marks
