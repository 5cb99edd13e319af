"""Prometheus text-format metrics of the server (``GET /metrics``), with no dependency beyond the stdlib.

Names (all prefixed ``s2s_server_``):

- ``active_sessions`` (gauge): sessions: open connections that have sent their first ``start`` (the count
  ``max_sessions`` limits; a connection that never starts is not counted);
- ``active_turns`` (gauge): turns whose backend session is open;
- ``sessions_total`` (counter): sessions admitted (connections whose first ``start`` was accepted);
- ``turns_total{status}`` (counter): finished turns, ``status`` = ``ok`` or ``error``;
- ``errors_total{kind}`` (counter): errors by protocol error code, plus ``client_disconnect``;
- ``ttfa_seconds`` (histogram): from receiving ``end_of_turn`` to sending the frame holding the first audible
  output sample, as seen by the server (no network hop, no client playback);
- ``audio_in_seconds_total`` / ``audio_out_seconds_total`` (counters): audio received / sent.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

TTFA_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServerMetrics:
    """Thread-safe counters, gauges and one histogram, rendered as Prometheus text exposition format 0.0.4."""

    def __init__(self, buckets: tuple[float, ...] = TTFA_BUCKETS_S) -> None:
        self._lock = threading.Lock()
        self.buckets = tuple(sorted(buckets))
        self.active_sessions = 0
        self.active_turns = 0
        self.sessions_total = 0
        self.turns_total: dict[str, int] = defaultdict(int)
        self.errors_total: dict[str, int] = defaultdict(int)
        self.audio_in_s = 0.0
        self.audio_out_s = 0.0
        self._ttfa_counts = [0] * (len(self.buckets) + 1)
        self._ttfa_sum = 0.0

    def session_opened(self) -> None:
        with self._lock:
            self.active_sessions += 1
            self.sessions_total += 1

    def session_closed(self) -> None:
        with self._lock:
            self.active_sessions -= 1

    def turn_opened(self) -> None:
        with self._lock:
            self.active_turns += 1

    def turn_closed(self, ok: bool) -> None:
        with self._lock:
            self.active_turns -= 1
            self.turns_total["ok" if ok else "error"] += 1

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors_total[kind] += 1

    def audio(self, in_s: float = 0.0, out_s: float = 0.0) -> None:
        with self._lock:
            self.audio_in_s += in_s
            self.audio_out_s += out_s

    def observe_ttfa(self, seconds: float) -> None:
        with self._lock:
            self._ttfa_counts[bisect.bisect_left(self.buckets, seconds)] += 1
            self._ttfa_sum += seconds

    def render(self) -> str:
        p = "s2s_server_"
        with self._lock:
            lines = [
                f"# HELP {p}active_sessions Open connections that have sent their first start.",
                f"# TYPE {p}active_sessions gauge",
                f"{p}active_sessions {self.active_sessions}",
                f"# HELP {p}active_turns Turns whose backend session is open.",
                f"# TYPE {p}active_turns gauge",
                f"{p}active_turns {self.active_turns}",
                f"# HELP {p}sessions_total Connections whose first start was accepted.",
                f"# TYPE {p}sessions_total counter",
                f"{p}sessions_total {self.sessions_total}",
                f"# HELP {p}turns_total Finished turns by status.",
                f"# TYPE {p}turns_total counter",
            ]
            for status in ("ok", "error"):
                lines.append(f'{p}turns_total{{status="{status}"}} {self.turns_total[status]}')
            lines += [f"# HELP {p}errors_total Errors by kind.", f"# TYPE {p}errors_total counter"]
            for kind in sorted(self.errors_total):
                lines.append(f'{p}errors_total{{kind="{kind}"}} {self.errors_total[kind]}')
            lines += [
                f"# HELP {p}audio_in_seconds_total Audio received from clients (seconds).",
                f"# TYPE {p}audio_in_seconds_total counter",
                f"{p}audio_in_seconds_total {self.audio_in_s:.6f}",
                f"# HELP {p}audio_out_seconds_total Audio sent to clients (seconds).",
                f"# TYPE {p}audio_out_seconds_total counter",
                f"{p}audio_out_seconds_total {self.audio_out_s:.6f}",
                f"# HELP {p}ttfa_seconds End of turn received to first audible output frame sent, server side.",
                f"# TYPE {p}ttfa_seconds histogram",
            ]
            cumulative = 0
            for bound, count in zip(self.buckets, self._ttfa_counts[:-1], strict=True):
                cumulative += count
                lines.append(f'{p}ttfa_seconds_bucket{{le="{bound:g}"}} {cumulative}')
            cumulative += self._ttfa_counts[-1]
            lines += [
                f'{p}ttfa_seconds_bucket{{le="+Inf"}} {cumulative}',
                f"{p}ttfa_seconds_sum {self._ttfa_sum:.6f}",
                f"{p}ttfa_seconds_count {cumulative}",
            ]
        return "\n".join(lines) + "\n"


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> ``{"name{labels}": value}`` (comments dropped); for tests and the load suite."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out
