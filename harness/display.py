"""Plain-text summary tables for the terminal (the full reports are ``s2s-bench report``)."""

from __future__ import annotations


def _fmt(stat: dict, key: str = "p50", digits: int = 1) -> str:
    if not stat or stat.get("n", 0) == 0 or stat.get(key) is None:
        return "n/a"
    return f"{stat[key]:.{digits}f}"


def _ci(stat: dict, key: str = "p50_ci95", digits: int = 1) -> str:
    ci = (stat or {}).get(key)
    return f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else ""


def _km(km: dict, q: int) -> str:
    """A Kaplan-Meier quantile with its interval; '> wait' when not reached."""
    if not km or not km.get("n"):
        return "n/a"
    value = km.get(f"p{q}")
    text = f"{value:.1f}" if value is not None else "> wait"
    ci = km.get(f"p{q}_ci95")
    if ci:
        hi = f"{ci[1]:.1f}" if ci[1] is not None else "> wait"
        text += f" [{ci[0]:.1f}, {hi}]"
    return text


def answered(s: dict) -> str:
    """``answered/n (rate%)``: turns with an audible answer (ok or truncated)."""
    n = s.get("n", 0)
    k = s.get("n_answered", s.get("n_ok", 0))
    return f"{k}/{n} ({100 * k / n:.0f}%)" if n else "0/0"


def summary_table(summary: dict[str, dict]) -> str:
    """One Markdown row per backend: answer rate, TTFA p50 [95% CI] / p95 from the end of speech, the censored
    (Kaplan-Meier) TTFA, TTFA from the end of file, TTFB, RTF, stalls, RTFx and the turns that went wrong."""
    header = (
        "| backend | answered | TTFA p50 ms [95% CI] | TTFA p95 ms | TTFA KM p50 ms [95% CI] | TTFA KM p95 ms | "
        "TTFA p50 from end of file | TTFB p50 ms | RTF p50 | stalls/utt | RTFx | no answer | truncated | failed |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for key, s in summary.items():
        ttfa = s.get("ttfa_ms", {})
        km = s.get("ttfa_km", {})
        rtfx = f"{s['rtfx']:.2f}" if s.get("rtfx") else "n/a"
        lines.append(
            f"| {key} | {answered(s)} | {_fmt(ttfa)} {_ci(ttfa)} | {_fmt(ttfa, 'p95')} | {_km(km, 50)} | "
            f"{_km(km, 95)} | {_fmt(s.get('ttfa_eof_ms', {}))} | {_fmt(s.get('ttfb_ms', {}))} | "
            f"{_fmt(s.get('rtf', {}), 'p50', 3)} | {_fmt(s.get('stall_count', {}), 'mean', 2)} | {rtfx} | "
            f"{s.get('n_no_answer', 0)} | {s.get('n_truncated', 0)} | {s['n_failed']} |"
        )
        for name, stat in s.get("marks", {}).items():
            lines.append(
                f"|  mark `{name}` | {stat.get('n', 0)} | {_fmt(stat)} {_ci(stat)} | {_fmt(stat, 'p95')} "
                "| | | | | | | | | | |"
            )
    return "\n".join(lines)


def failure_lines(summary: dict[str, dict], limit: int = 10) -> list[str]:
    """Lines for failed and truncated turns (kind, reason), turns with no answer, and input that fell behind."""
    out = []
    for key, s in summary.items():
        for f in s.get("failures", [])[:limit]:
            out.append(f"failed: {key} {f['utt']}: {f['kind']}: {f['reason']}")
        extra = len(s.get("failures", [])) - limit
        if extra > 0:
            out.append(f"failed: {key}: ... and {extra} more failures (see events.jsonl)")
        for f in s.get("truncated", [])[:limit]:
            out.append(f"truncated: {key} {f['utt']}: answer started, then {f['kind']}: {f['reason']}")
        if s.get("no_answer"):
            out.append(f"no answer: {key}: never audible: {', '.join(s['no_answer'])}")
        if s.get("input_lagged"):
            lagged = ", ".join(f"{x['utt']} {x['input_lag_ms']:.0f} ms" for x in s["input_lagged"][:limit])
            out.append(
                f"input lag: {key}: pushes fell behind the speaker (a blocking push or a busy machine): {lagged}"
            )
    return out


def metrics_table(summary: dict[str, dict]) -> str:
    """One Markdown row per backend x metric: corpus value [95% CI], n, or n/a with the reason."""
    lines = ["| backend | metric | value [95% CI] | n |", "|---|---|---|---|"]
    for key, s in summary.items():
        for name, m in s.get("metrics", {}).items():
            if m.get("value") is None:
                lines.append(f"| {key} | {name} | n/a: {m.get('reason', 'no value')} | {m.get('n', 0)} |")
                continue
            ci = m.get("ci95")
            ci_text = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
            lines.append(f"| {key} | {name} | {m['value']:.3f}{ci_text} | {m.get('n', '')} |")
    return "\n".join(lines)


def _rate(r: dict | None) -> str:
    if not r or not r.get("n"):
        return "n/a"
    return f"{r['value']:.2f} ({r['k']}/{r['n']})"


def turns_table(summary: dict[str, dict]) -> str:
    """One Markdown row per backend x turn-taking scenario (harness.turns.metrics); empty without any."""
    header = (
        "| backend | endpointing | scenario | n | takeover (TOR) | response latency ms mean / p50 | "
        "endpoint ms p50 | early endpoint | pause takeover | spoke in pause | yielded | stopped by interruption | "
        "time to yield ms p50 | answers interruption | false stops at backchannels |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for key, s in summary.items():
        turns = s.get("turns")
        if not turns:
            continue
        for name, t in turns["scenarios"].items():
            latency = t.get("response_latency_ms", {})
            lines.append(
                f"| {key} | {turns['endpointing']} | {name} | {t['n'] - t['n_failed']} | "
                f"{_rate(t['takeover_rate'])} | {_fmt(latency, 'mean')} / {_fmt(latency)} | "
                f"{_fmt(t.get('endpoint_ms', {}))} | {_rate(t.get('early_endpoint_rate'))} | "
                f"{_rate(t.get('pause_takeover_rate'))} | "
                f"{_rate(t.get('spoke_in_pause_rate'))} | {_rate(t.get('yielded_rate'))} | "
                f"{_rate(t.get('stopped_by_interruption_rate'))} | "
                f"{_fmt(t.get('time_to_yield_ms', {}))} | {_rate(t.get('answers_interruption_rate'))} | "
                f"{_rate(t.get('false_stop_rate'))} |"
            )
    return "\n".join(lines) if len(lines) > 2 else ""
