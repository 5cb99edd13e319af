"""The load suite: ramp concurrent sessions against a server on 127.0.0.1 and find how many users it serves.

For each concurrency level N (e.g. 1, 2, 4, 8, 16) the runner plays ``rounds x N`` utterances through the
``remote`` backend with ``concurrency=N`` (realtime pacing by default), so every number is measured by the
harness's own clock on the client side of the socket, network hop included. Per level: TTFA p50/p95, stalls
(underruns when the answer is played in real time) and errors by kind. The capacity is the largest N such that
N and every lower level kept p95 TTFA within ``budget_ms`` with no stall and no error (a level that passes above a
failing one is machine noise, not capacity).

The suite is bounded: levels run in order, each run has its own timeout, and the ramp stops early once a level
is clearly overloaded (p95 above ``stop_factor x budget_ms`` or more than half of its utterances failed) or
``max_total_s`` has passed.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..backend import redact_url

DEFAULT_LEVELS = (1, 2, 4, 8, 16)


@dataclass
class LoadLevel:
    """What one concurrency level measured (times in ms)."""

    concurrency: int
    n: int
    n_ok: int
    n_failed: int
    ttfa_p50_ms: float | None
    ttfa_p95_ms: float | None
    stalls: int
    stalled_utterances: int
    errors: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    run_dir: str = ""
    n_no_answer: int = 0

    def within(self, budget_ms: float) -> bool:
        """Served: every utterance ok, p95 TTFA within the budget, no stall."""
        return (
            self.n_failed == 0
            and self.n_ok > 0
            and self.ttfa_p95_ms is not None
            and self.ttfa_p95_ms <= budget_ms
            and self.stalls == 0
        )


@dataclass
class LoadReport:
    backend: str
    budget_ms: float
    pacing: str
    data: str
    levels: list[LoadLevel]
    capacity: int  # largest concurrency with it and every lower level within the budget; 0 if none
    stopped_early: str | None = None
    machine: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """A Markdown table, one row per level, and the capacity line."""
        rows = [
            "| concurrent sessions | ok/n | TTFA p50 ms | TTFA p95 ms | stalls (utts) | errors | within budget |",
            "|---|---|---|---|---|---|---|",
        ]
        for lv in self.levels:
            fmt = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
            errors = ", ".join(f"{k} {v}" for k, v in sorted(lv.errors.items())) or "0"
            rows.append(
                f"| {lv.concurrency} | {lv.n_ok}/{lv.n} | {fmt(lv.ttfa_p50_ms)} | {fmt(lv.ttfa_p95_ms)} | "
                f"{lv.stalls} ({lv.stalled_utterances}) | {errors} | {'yes' if lv.within(self.budget_ms) else 'no'} |"
            )
        rows.append("")
        top = max((lv.concurrency for lv in self.levels), default=0)
        at_least = "at least " if self.capacity and self.capacity == top else ""
        rows.append(
            f"Capacity: {at_least}**{self.capacity}** concurrent sessions (this level and all below it within "
            f"budget: p95 TTFA <= {self.budget_ms:g} ms, no stalls, no errors)"
            f" ({self.backend}, {self.pacing} pacing, {self.data})."
            + (f" Ramp stopped early: {self.stopped_early}." if self.stopped_early else "")
        )
        return "\n".join(rows)


def measure_level(run_dir: Path, backend_key: str, concurrency: int, wall_s: float) -> LoadLevel:
    """Summarise one level's run folder."""
    from ..latency import utterance_latencies
    from ..results import load_run

    run = load_run(run_dir)
    s = run.summary[backend_key]
    rows = [r for r in utterance_latencies(run.events) if r.backend == backend_key]
    ok = [r for r in rows if r.status == "ok"]
    cut = ("failed", "truncated")  # a truncated answer was cut by the timeout: not served
    errors = Counter(r.error_kind or "unknown" for r in rows if r.status in cut)
    return LoadLevel(
        concurrency=concurrency,
        n=s["n"],
        n_ok=s["n_ok"],
        n_failed=sum(r.status in cut for r in rows),
        ttfa_p50_ms=s["ttfa_ms"].get("p50"),
        ttfa_p95_ms=s["ttfa_ms"].get("p95"),
        stalls=int(sum(r.stall_count or 0 for r in ok)),
        stalled_utterances=sum(1 for r in ok if r.stall_count),
        errors=dict(errors),
        wall_s=round(wall_s, 2),
        run_dir=str(run_dir),
        n_no_answer=s.get("n_no_answer", 0),
    )


def run_level(
    remote: str,
    backend_key: str,
    data: str,
    utterances: list,
    concurrency: int,
    run_dir: Path,
    *,
    pacing: str,
    timeout_s: float,
    progress: bool,
) -> LoadLevel:
    """Play ``utterances`` through the ``remote`` spec with ``concurrency`` sessions at once into ``run_dir`` (no
    audio saved) and summarise the level (:func:`measure_level`); the ramps of both load commands call this."""
    from ..runner import run_benchmark

    t0 = time.monotonic()
    run_benchmark(
        [remote],
        data,
        utterances=utterances,
        pacing=pacing,
        concurrency=concurrency,
        timeout_s=timeout_s,
        out=run_dir,
        suite="load",
        save_audio=False,
        progress=progress,
    )
    return measure_level(run_dir, backend_key, concurrency, time.monotonic() - t0)


def run_load_suite(
    backend: str = "loopback",
    *,
    url: str | None = None,
    token: str | None = None,
    levels: tuple[int, ...] = DEFAULT_LEVELS,
    rounds: int = 2,
    data: str = "synthetic-clips",
    budget_ms: float = 500.0,
    pacing: str = "realtime",
    wire_format: str = "pcm16",
    timeout_s: float = 30.0,
    max_total_s: float = 600.0,
    stop_factor: float = 4.0,
    out: str | Path = "reports/runs/load",
    progress: bool = False,
) -> LoadReport:
    """Ramp ``levels`` of concurrent sessions; serve ``backend`` on 127.0.0.1 unless ``url`` names a server.

    Writes ``load.json`` and ``load.md`` (the table) into ``out`` plus one run folder per level (``c01``, ...).
    """
    from ..data import load_utterances
    from ..results import machine_info
    from .limits import ServerLimits
    from .serving import ServerThread, load_backend

    if not levels or any(n < 1 for n in levels):
        raise ValueError(f"Expected concurrency levels >= 1 but got {levels!r}")
    if rounds < 1:
        raise ValueError(f"Expected rounds >= 1 but got {rounds!r}")
    levels = tuple(sorted(set(levels)))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    utts = load_utterances(data, limit=rounds * max(levels))
    if not utts:
        raise ValueError(f"No utterances in {data!r}")
    server = None
    if url is None:
        server = ServerThread(
            load_backend(backend), ServerLimits(max_sessions=max(levels) + 4), token=token
        ).start()
        url = server.url
    remote = f"remote:url={url},format={wire_format}" + (f",token={token}" if token else "")
    from ..backend import BackendSpec

    key = str(BackendSpec.parse(remote))
    results: list[LoadLevel] = []
    stopped = None
    t_start = time.monotonic()
    try:
        for n in levels:
            if time.monotonic() - t_start > max_total_s:
                stopped = f"time budget max_total_s={max_total_s:g} s used up before concurrency {n}"
                break
            batch = [utts[i % len(utts)] for i in range(rounds * n)]
            # the same utterance twice in one run would share an id: keep each once per level
            batch = list({u.id: u for u in batch}.values())
            level = run_level(
                remote,
                key,
                data,
                batch,
                n,
                out / f"c{n:02d}",
                pacing=pacing,
                timeout_s=timeout_s,
                progress=progress,
            )
            results.append(level)
            if level.n_failed * 2 > level.n:
                stopped = f"more than half of the sessions failed at concurrency {n}"
                break
            if level.ttfa_p95_ms is not None and level.ttfa_p95_ms > stop_factor * budget_ms:
                stopped = f"p95 TTFA {level.ttfa_p95_ms:.0f} ms > {stop_factor:g} x budget at concurrency {n}"
                break
    finally:
        if server is not None:
            server.stop()
    capacity = 0
    for lv in results:
        if not lv.within(budget_ms):
            break
        capacity = lv.concurrency
    report = LoadReport(
        backend=backend if server is not None else redact_url(url),
        budget_ms=budget_ms,
        pacing=pacing,
        data=data,
        levels=results,
        capacity=capacity,
        stopped_early=stopped,
        machine=machine_info(),
    )
    (out / "load.json").write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    (out / "load.md").write_text(report.table() + "\n", encoding="utf-8")
    return report
