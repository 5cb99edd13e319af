"""Capacity and cost: ramp concurrent users on one or more backends, side by side in one run, until each breaks.

Each backend is served on 127.0.0.1 (one server each, all loaded before anything is timed) and measured through
the ``remote`` backend, so every number is the harness's own clock on the client side of the socket. By default
each server is ``s2s-bench serve`` in its own process (``server="process"``), as it is deployed: in the measuring
process (``server="thread"``) the server's event loop and the load client's threads share one GIL, and the
client's work shows up as the server's latency. Levels run
in order; at each level the backends still ramping take turns (the order alternates from level to level, so slow
drift of the machine hits both alike), one at a time, so they never compete for the CPU. A backend stops at its
first level that is not *within budget* (p95 TTFA above ``budget_ms``, a stall, or an error); its capacity is the
last level that was (see :class:`harness.server.load.LoadLevel`). With ``price_per_hour`` (what the machine costs,
e.g. 0.49 for an A6000 hour) the cost per user-hour is ``price_per_hour / capacity``.

With ``against=REV`` every backend is also served from git revision REV (checked out into a temporary worktree,
as ``s2s-bench gate --against`` does) and ramped beside the working tree's, level by level, taking turns: "did my
change cost users?" answered in one run on one machine (asv's ``continuous`` for capacity).

With ``passes=N`` the whole ramp runs N times over the same loaded servers (pass after pass, the order of the
backends alternating as well): a capacity decided by the first stall is noisy at the edge (on a 2-core machine
the same engine held 20, 24 and 28 users in three runs), so each pass's capacity is kept and the one reported is
their median (the lower middle one for an even N), with the range beside it; the cost per user-hour is priced at
that median. A pass cut short by ``max_total_s`` or by its server's exit is shown but not counted (unless every
pass was).

Levels need more utterances than the data may have: an utterance is repeated under a new id (``<id>#r<k>``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .load import LoadLevel, run_level

DEFAULT_RAMP = (1, 2, 4, 8, 16, 24, 32, 48, 64)


@dataclass
class RampPass:
    """One pass of a backend's ramp: its levels, its capacity (users) and why it stopped."""

    levels: list[LoadLevel] = field(default_factory=list)
    capacity: int = 0
    stopped: str | None = None
    broke: str | None = None  # why its first level not within budget was not (``keep_going`` goes on past it)
    cut: bool = (
        False  # stopped by the time budget or its server's exit, not by a level: its capacity is partial
    )


@dataclass
class BackendCapacity:
    """One backend's ramp: every pass (one unless ``passes`` > 1) and the capacity reported (their median)."""

    backend: str
    engine: dict | None = None
    revision: str | None = None  # the commit it was served from (``against``); None: this installation
    passes: list[RampPass] = field(default_factory=list)

    @property
    def capacities(self) -> list[int]:
        return [p.capacity for p in self.passes]

    @property
    def capacity(self) -> int:
        """The median of the passes' capacities (the lower middle one for an even number of passes); passes cut
        short (time budget, server exit) count only when no pass ran whole."""
        whole = [p.capacity for p in self.passes if not p.cut]
        return statistics.median_low(whole or self.capacities) if self.passes else 0

    @property
    def levels(self) -> list[LoadLevel]:
        """Every level measured, pass after pass."""
        return [lv for p in self.passes for lv in p.levels]

    def cost_per_user_hour(self, price_per_hour: float | None) -> float | None:
        if price_per_hour is None or self.capacity == 0:
            return None
        return price_per_hour / self.capacity

    def to_dict(self, price_per_hour: float | None) -> dict:
        """What ``load.json`` holds: the summary fields (capacity: the median; levels, stopped and broke of a
        single pass as before), then every pass."""
        one = self.passes[0] if len(self.passes) == 1 else None
        return {
            "backend": self.backend,
            "capacity": self.capacity,
            "capacities": self.capacities,
            "cost_per_user_hour": self.cost_per_user_hour(price_per_hour),
            "engine": self.engine,
            "revision": self.revision,
            "levels": [asdict(lv) for lv in one.levels] if one else None,
            "stopped": one.stopped if one else None,
            "broke": one.broke if one else None,
            "passes": [asdict(p) for p in self.passes],
        }


@dataclass
class CapacityReport:
    budget_ms: float
    pacing: str
    data: str
    price_per_hour: float | None
    backends: list[BackendCapacity]
    machine: dict = field(default_factory=dict)
    server: str = "process"
    against: dict | None = None  # REV beside the working tree: commit, subject, why it was chosen

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "backends"}
        d["passes"] = max((len(b.passes) for b in self.backends), default=0)
        d["backends"] = [b.to_dict(self.price_per_hour) for b in self.backends]
        return d

    def table(self) -> str:
        """Markdown: one row per level and backend, then a capacity (and cost) line per backend."""
        fmt = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
        n_passes = max((len(b.passes) for b in self.backends), default=1)
        several = n_passes > 1
        rows = [
            "| users | backend |"
            + (" pass |" if several else "")
            + " ok/n | TTFA p50 ms | TTFA p95 ms | stalls (utts) | errors | within budget |",
            "|---|---|" + ("---|" if several else "") + "---|---|---|---|---|---|",
        ]
        levels = sorted({lv.concurrency for b in self.backends for lv in b.levels})
        for n in levels:
            for b in self.backends:
                for k, ramp in enumerate(b.passes):
                    lv = next((x for x in ramp.levels if x.concurrency == n), None)
                    if lv is None:
                        continue
                    errors = ", ".join(f"{kind} {count}" for kind, count in sorted(lv.errors.items())) or "0"
                    rows.append(
                        f"| {n} | {b.backend} |"
                        + (f" {k + 1} |" if several else "")
                        + f" {lv.n_ok}/{lv.n} | {fmt(lv.ttfa_p50_ms)} | {fmt(lv.ttfa_p95_ms)} | "
                        f"{lv.stalls} ({lv.stalled_utterances}) | {errors} | "
                        f"{'yes' if lv.within(self.budget_ms) else 'no'} |"
                    )
        rows.append("")
        for b in self.backends:
            top = max((lv.concurrency for lv in b.levels), default=0)
            unbroken = not any(p.stopped or p.broke for p in b.passes)
            at_least = "at least " if b.capacity and b.capacity == top and unbroken else ""
            line = f"- `{b.backend}`: capacity {at_least}**{b.capacity}** users"
            if len(b.passes) > 1:
                caps = ", ".join(f"{p.capacity}{' (cut short)' if p.cut else ''}" for p in b.passes)
                uncounted = (
                    "; passes cut short not counted"
                    if 0 < sum(p.cut for p in b.passes) < len(b.passes)
                    else ""
                )
                line += (
                    f" (median of {len(b.passes)} passes: {caps}; range {min(b.capacities)}-{max(b.capacities)}"
                    f"{uncounted})"
                )
            cost = b.cost_per_user_hour(self.price_per_hour)
            if self.price_per_hour is not None:
                line += (
                    f", **${cost:.4f} per user-hour** at ${self.price_per_hour:g}/h"
                    if cost is not None
                    else f", no cost per user-hour (capacity 0) at ${self.price_per_hour:g}/h"
                )
            if b.engine:
                workers = b.engine.get("workers")
                where = (
                    f", {workers} worker process{'es' if workers > 1 else ''}"
                    if workers
                    else ", in the server's process"
                )
                line += f" (engine {b.engine.get('variant')}, {b.engine.get('slots')} slots{where})"
            for k, ramp in enumerate(b.passes):
                said = f" in pass {k + 1}" if len(b.passes) > 1 else ""
                if ramp.stopped:
                    line += f"; stopped{said}: {ramp.stopped}"
                elif ramp.broke:
                    reached = max((lv.concurrency for lv in ramp.levels), default=0)
                    line += f"; first out of budget{said}: {ramp.broke} (measured on to {reached} users)"
            rows.append(line)
        if self.against:
            rows.append(
                f"\n`@ {self.against['commit'][:12]}`: served from {self.against['subject']} (checked out into a "
                f"temporary git worktree; {self.against['chosen_by']}); the others from the working tree, "
                f"{'with uncommitted changes' if self.against.get('dirty') else 'as committed'}."
            )
        rows.append(
            f"\nWithin budget: p95 TTFA <= {self.budget_ms:g} ms, no stalls, no errors, at that level and every "
            f"level below ({self.pacing} pacing, {self.data}). "
            + (
                "Each backend served by `s2s-bench serve` in its own process on 127.0.0.1; the load client in "
                "another, on the same machine."
                if self.server == "process"
                else "Each backend served in a thread of the measuring process (server and load client share "
                "one GIL)."
            )
        )
        return "\n".join(rows)


def _repeat(utts: list, count: int) -> list:
    """``count`` utterances cycling through ``utts``; repeats get new ids so every one is its own job."""
    out = []
    for i in range(count):
        u = utts[i % len(utts)]
        k = i // len(utts)
        out.append(u if k == 0 else dataclasses.replace(u, id=f"{u.id}#r{k}"))
    return out


def run_capacity(
    backends: list[str],
    *,
    levels: tuple[int, ...] = DEFAULT_RAMP,
    rounds: int = 2,
    data: str = "synthetic-clips",
    split: str | None = None,
    budget_ms: float = 500.0,
    pacing: str = "realtime",
    wire_format: str = "pcm16",
    timeout_s: float = 30.0,
    max_total_s: float = 1800.0,
    price_per_hour: float | None = None,
    out: str | Path = "reports/runs/load",
    progress: bool = False,
    server: str = "process",
    against: str | None = None,
    repo: str | Path | None = None,
    keep_going: bool = False,
    stop_factor: float = 4.0,
    passes: int = 1,
) -> CapacityReport:
    """Ramp every backend in ``backends`` (specs) through ``levels``; writes ``load.json`` and ``load.md``.

    ``server``: ``process`` (each backend served by ``s2s-bench serve`` in its own process) or ``thread`` (in
    this process). ``against``: also serve every backend from this git revision (``""``: the default revision of
    ``gate --against``) of ``repo`` (default: this checkout), ramped beside the working tree's. ``keep_going``:
    a backend goes on to the next level after one that is not within budget (its capacity does not change: the
    last level with it and every lower one within budget), and stops only once a level is clearly overloaded
    (p95 TTFA above ``stop_factor`` x the budget, or more than half of the turns failed): the whole curve, not
    just the first failure, which one stall decides. ``passes``: ramp that many times over the same servers; the
    capacity reported is the median of the passes' (see the module doc)."""
    from ..backend import BackendError, BackendSpec
    from ..data import load_utterances
    from ..results import machine_info
    from ..tree_server import ServeError, TreeServer
    from .limits import ServerLimits
    from .serving import ServerThread, load_backend

    if not backends:
        raise ValueError("Expected at least one --backend")
    if not levels or any(n < 1 for n in levels):
        raise ValueError(f"Expected concurrency levels >= 1 but got {levels!r}")
    if rounds < 1:
        raise ValueError(f"Expected rounds >= 1 but got {rounds!r}")
    if passes < 1:
        raise ValueError(f"Expected passes >= 1 but got {passes!r}")
    if price_per_hour is not None and price_per_hour <= 0:
        raise ValueError(
            f"Expected --price-per-hour > 0 (dollars per machine-hour) but got {price_per_hour!r}"
        )
    if server not in ("process", "thread"):
        raise ValueError(f"Expected server 'process' or 'thread' but got {server!r}")
    if against is not None and server != "process":
        raise ValueError("--against serves the revision's tree in a process of its own: use --server process")
    levels = tuple(sorted(set(levels)))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kw = {"split": split} if split else {}
    utts = load_utterances(data, **kw)
    if not utts:
        raise ValueError(f"No utterances in {data!r}" + (f" (split {split})" if split else ""))
    servers, ramps, keys, loaded = [], [], [], []
    stack = contextlib.ExitStack()
    try:
        sides: list[tuple[str, Path | None, str | None, str]] = [
            (spec, None, None, spec) for spec in backends
        ]
        against_info = None
        if against is not None:
            sides, against_info = _sides_against(backends, against, repo, stack)
        for b, (spec, tree, commit, label) in enumerate(sides):
            if server == "process":
                served = TreeServer(
                    tree,
                    spec,
                    out / f"b{b}-server.log",
                    label=f"load: {label}",
                    serve_args=("--max-sessions", str(max(levels) + 4)),
                )
                servers.append(served)
                try:
                    served.start()
                except ServeError as exc:
                    raise BackendError(str(exc)) from None
                info = (served.health.get("backend") or {}).get("engine")
            else:
                backend = load_backend(spec)
                loaded.append(backend)
                served = ServerThread(backend, ServerLimits(max_sessions=max(levels) + 4)).start()
                servers.append(served)
                info = backend.describe().get("engine")
            remote = f"remote:url={served.url},format={wire_format}"
            keys.append(str(BackendSpec.parse(remote)))
            ramps.append(BackendCapacity(backend=label, engine=info, revision=commit))
        for p in range(passes):
            t_start = time.monotonic()  # max_total_s is per pass: each pass gets the whole ramp
            for ramp in ramps:
                ramp.passes.append(RampPass())
            for index, n in enumerate(levels):
                order = list(range(len(ramps)))
                if (index + p) % 2:  # alternate the order level by level and pass by pass
                    order.reverse()
                for b in order:
                    ramp = ramps[b].passes[p]
                    if ramp.stopped:
                        continue
                    if time.monotonic() - t_start > max_total_s:
                        ramp.stopped = f"time budget max_total_s={max_total_s:g} s used up before {n} users"
                        ramp.cut = True
                        continue
                    if isinstance(servers[b], TreeServer) and not servers[b].alive():
                        ramp.stopped = (
                            f"its server exited (code {servers[b].proc.returncode}) before {n} users; "
                            f"log: {servers[b].log}"
                        )
                        ramp.cut = True
                        continue
                    run_dir = out / (f"b{b}-p{p + 1}-c{n:03d}" if passes > 1 else f"b{b}-c{n:03d}")
                    if run_dir.exists():  # a previous ramp's level: this ramp measures it anew
                        shutil.rmtree(run_dir)
                    level = run_level(
                        f"remote:url={servers[b].url},format={wire_format}",
                        keys[b],
                        data,
                        _repeat(utts, rounds * n),
                        n,
                        run_dir,
                        pacing=pacing,
                        timeout_s=timeout_s,
                        progress=progress,
                    )
                    ramp.levels.append(level)
                    if level.within(budget_ms):
                        if ramp.broke is None:
                            ramp.capacity = n
                        continue
                    why = []
                    if level.ttfa_p95_ms is None or level.ttfa_p95_ms > budget_ms:
                        why.append(f"p95 TTFA {fmt_ms(level.ttfa_p95_ms)} > {budget_ms:g} ms")
                    if level.stalls:
                        why.append(f"{level.stalls} stalls")
                    if level.n_failed:
                        why.append(f"{level.n_failed} errors")
                    reason = f"{', '.join(why) or 'not within budget'} at {n} users"
                    first = ramp.broke is None
                    if first:
                        ramp.broke = reason
                    overloaded = (
                        level.ttfa_p95_ms is None
                        or level.ttfa_p95_ms > stop_factor * budget_ms
                        or level.n_failed > level.n / 2
                    )
                    if not keep_going:
                        ramp.stopped = reason
                    elif overloaded:
                        ramp.stopped = f"{reason}: overloaded" + (
                            "" if first else f" (first out of budget: {ramp.broke})"
                        )
    finally:
        for served in servers:
            served.stop()
        for backend in loaded:
            backend.shutdown()
        stack.close()  # the revision's worktree, once its servers have stopped
    report = CapacityReport(
        budget_ms=budget_ms,
        pacing=pacing,
        data=data + (f" ({split})" if split else ""),
        price_per_hour=price_per_hour,
        backends=ramps,
        machine=machine_info(),
        server=server,
        against=against_info,
    )
    (out / "load.json").write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    (out / "load.md").write_text(report.table() + "\n", encoding="utf-8")
    return report


def _sides_against(
    backends: list[str], against: str, repo: str | Path | None, stack: contextlib.ExitStack
) -> tuple[list[tuple[str, Path | None, str | None, str]], dict]:
    """``(spec, tree, commit, label)`` for REV's side and the working tree's side of every backend, REV's tree
    checked out into a temporary worktree that ``stack`` removes; and what REV is."""
    from ..revision import RevisionError, harness_checkout, materialised, resolve, working_tree_state

    try:
        root = Path(repo).resolve() if repo else harness_checkout()
        revision = resolve(root, against or None)
        base_tree = stack.enter_context(materialised(root, revision))
    except RevisionError as exc:
        raise ValueError(str(exc)) from None
    state = working_tree_state(root)
    sides = []
    for spec in backends:
        sides.append((spec, base_tree, revision.commit, f"{spec} @ {revision.short}"))
        sides.append((spec, root, state["commit"], spec))
    info = {
        "commit": revision.commit,
        "subject": revision.subject,
        "chosen_by": revision.chosen_by,
        "working_tree": state["commit"],
        "dirty": state["dirty"],
    }
    return sides, info


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"
