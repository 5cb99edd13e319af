"""Plain-text summary tables for the terminal (the full reports are ``s2s-bench report``)."""

from __future__ import annotations


def _fmt(stat: dict, key: str = "p50", digits: int = 1) -> str:
    if not stat or stat.get("n", 0) == 0 or stat.get(key) is None:
        return "n/a"
    return f"{stat[key]:.{digits}f}"


def _ci(stat: dict, key: str = "p50_ci95", digits: int = 1) -> str:
    ci = (stat or {}).get(key)
    return f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else ""


def summary_table(summary: dict[str, dict]) -> str:
    """One Markdown row per backend: TTFA p50 [95% CI] / p95, TTFB p50, RTF p50, stalls, rtfx, failures."""
    header = (
        "| backend | ok/n | TTFA p50 ms [95% CI] | TTFA p95 ms | TTFB p50 ms | RTF p50 | stalls/utt | "
        "stall ms/utt | RTFx | failed |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for key, s in summary.items():
        ttfa = s.get("ttfa_ms", {})
        rtfx = f"{s['rtfx']:.2f}" if s.get("rtfx") else "n/a"
        lines.append(
            f"| {key} | {s['n_ok']}/{s['n']} | {_fmt(ttfa)} {_ci(ttfa)} | {_fmt(ttfa, 'p95')} | "
            f"{_fmt(s.get('ttfb_ms', {}))} | {_fmt(s.get('rtf', {}), 'p50', 3)} | "
            f"{_fmt(s.get('stall_count', {}), 'mean', 2)} | {_fmt(s.get('stall_ms', {}), 'mean', 1)} | {rtfx} | "
            f"{s['n_failed']} |"
        )
        for name, stat in s.get("marks", {}).items():
            lines.append(
                f"|  mark `{name}` | {stat.get('n', 0)} | {_fmt(stat)} {_ci(stat)} | {_fmt(stat, 'p95')} "
                "| | | | | | |"
            )
    return "\n".join(lines)


def failure_lines(summary: dict[str, dict], limit: int = 10) -> list[str]:
    out = []
    for key, s in summary.items():
        for f in s.get("failures", [])[:limit]:
            out.append(f"{key} {f['utt']}: {f['kind']}: {f['reason']}")
        extra = len(s.get("failures", [])) - limit
        if extra > 0:
            out.append(f"{key}: ... and {extra} more failures (see events.jsonl)")
    return out
