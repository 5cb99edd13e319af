"""Side-by-side gates: ``s2s-bench gate --against REV`` measures REV beside the working tree, in one run.

asv's ``continuous``, for streaming backends: REV is checked out into a temporary git worktree
(:mod:`harness.revision`); every backend spec is served twice on 127.0.0.1, once from REV's tree and once from the
working tree, each by its own tree's ``s2s-bench serve`` in its own process (:mod:`harness.tree_server`: same
interpreter, the tree first on ``sys.path``). This harness measures all of them through ``remote`` (both sides
pay the same hop) in **one** run on the same utterances, interleaved per utterance with the order alternating
(base, candidate / candidate, base), then splits the run into a ``base`` and a ``candidate`` run folder
(:mod:`harness.run_split`) and compares them with :func:`harness.gate.compare`, paired by utterance.

What the gate decides, and its exit codes (:data:`EXIT_CODES`):

- **0** every verdict is ``same``, ``~`` or ``better``;
- **1** a regression: a ``worse`` verdict, the candidate failed more utterances than REV (a crash is not noise),
  or the candidate's server died during the run;
- **2** a usage error (a bad rule or option; nothing measured);
- **3** not comparable, and said loudly: REV cannot be found or checked out, its server does not start, speaks
  another protocol or dies, or any verdict is ``x``. A side-by-side gate that cannot compare never passes quietly;
  ``--allow-incomparable`` turns 3 into 0 (still printed) for the one commit that changes the protocol on purpose.

What it does not measure: the client. Both sides are measured by the candidate's harness (runner, latency
definitions, ``remote``), so a change to the harness's own overhead hits both sides alike and is invisible here.
Each side's server computes its own engine choices (``custom``'s ``optimize=auto`` decision is keyed by the code
digest of its tree, so identical code shares one decision and changed code decides again); the report records
each side's served options and engine variant, and says when they differ.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .gate import DEFAULT_ALPHA, GateUsageError, Verdict, compare, incomparable, parse_rules, verdict_table
from .revision import Revision, RevisionError, harness_checkout, materialised, resolve, working_tree_state
from .tree_server import ServeError, TreeServer, log_tail

AGAINST_SCHEMA = "s2s-bench.gate-against/1"
AGAINST_RULES = ("ttfa.p50:+5%,10ms", "ttfa.p95:+20%,20ms", "unanswered:+10pt", "rtf.p50:+10%,0.02")
"""Default rules of a side-by-side gate. p50 at 5% with a 10 ms floor: the per-utterance shift is measured paired,
so it can be tight; a 10% threshold missed the planted +20 ms of a loopback at ~190 ms (+10.5%) in half the gates
of an earlier ``scripts/gate_power.py`` batch run under load (its report was not kept). ``rtf`` (generation time /
answer duration, paired by utterance) catches more compute per frame, which realtime TTFA hides while a backend
runs well ahead of real time: ``custom`` +25% per engine tick moved TTFA by 2-5 ms but its RTF by +27%
(``reports/gate-power.md``). Its floor, 0.02 in RTF units, keeps a backend that hands over its answer at once
(``loopback``: RTF ~0.01, +-20% between utterances) from tripping it."""
DEFAULT_TEST = "wilcoxon"
EXIT_PASSED, EXIT_REGRESSION, EXIT_USAGE, EXIT_NOT_COMPARABLE = 0, 1, 2, 3
EXIT_CODES = {0: "passed", 1: "FAILED: regression", 2: "usage error", 3: "FAILED: not comparable"}
SIDES = ("base", "candidate")


class NotComparable(RuntimeError):
    """The two sides could not be measured side by side (exit code 3); the message says why."""


@dataclass
class SideBySide:
    """What :func:`measure_side_by_side` produced: the two split run folders and how each side was run."""

    out: Path
    revision: Revision
    candidate_state: dict
    base_run: Path
    candidate_run: Path
    sides: dict[str, list[dict]] = field(default_factory=dict)  # side -> one record per spec
    keys: list[str] = field(default_factory=list)  # the specs' keys, as both split runs name the backends
    problems: list[str] = field(default_factory=list)  # loud, not comparable
    regressions: list[str] = field(default_factory=list)  # loud, the candidate's fault


def _prepare_out(out: Path) -> None:
    """A fresh gate folder: a previous gate's folder is replaced, anything else is refused."""
    if out.exists() and any(out.iterdir()):
        if not ((out / "gate.json").exists() or (out / "combined").exists() or (out / "servers").exists()):
            raise GateUsageError(f"--out {out} holds something other than a gate's folder; choose another")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _spec_keys(specs: list[str]) -> list[str]:
    from .backend import BackendSpec, OptionError

    try:
        keys = [BackendSpec.parse(s).key for s in specs]
    except OptionError as exc:
        raise GateUsageError(str(exc)) from None
    if not keys:
        raise GateUsageError("gate --against needs at least one --backend SPEC to measure on both sides")
    if len(set(keys)) != len(keys):
        raise GateUsageError(f"A backend is given twice: {keys}")
    return keys


def measure_side_by_side(
    specs: list[str],
    against: str | None,
    *,
    data: str = "synthetic-clips",
    split: str | None = None,
    limit: int | None = 16,
    pacing: str = "realtime",
    chunk_ms: float = 20.0,
    concurrency: int = 1,
    timeout_s: float = 60.0,
    vad: str = "auto",
    out: str | Path = "reports/runs/gate-against",
    wire_format: str = "pcm16",
    serve_timeout_s: float = 600.0,
    repo: str | Path | None = None,
    progress: bool = False,
) -> SideBySide:
    """Serve and measure every spec from REV's tree and from the working tree, in one run; split it in two.

    Raises :class:`GateUsageError` (nothing measured) and :class:`NotComparable` (REV cannot be found, checked
    out or served, or speaks another protocol). A server that dies during the run is recorded in ``problems``
    (REV's) or ``regressions`` (the candidate's).
    """
    from .backend import BackendSpec
    from .run_split import split_run
    from .runner import run_benchmark
    from .server import protocol as P

    keys = _spec_keys(specs)
    try:
        repo = Path(repo).resolve() if repo else harness_checkout()
        revision = resolve(repo, against)
    except RevisionError as exc:
        raise NotComparable(str(exc)) from None
    out = Path(out)
    _prepare_out(out)
    state = working_tree_state(repo)
    servers: dict[str, list[TreeServer]] = {side: [] for side in SIDES}
    problems: list[str] = []
    regressions: list[str] = []
    try:
        with materialised(repo, revision) as base_tree:
            trees = {"base": base_tree, "candidate": repo}
            names = {"base": f"REV {revision.short}", "candidate": "the working tree"}
            try:
                for i, (spec, key) in enumerate(zip(specs, keys, strict=True)):
                    for side in SIDES:  # one at a time: a load (optimize=auto times variants) never competes
                        server = TreeServer(
                            trees[side], spec, out / "servers" / f"{side}-{i}.log", f"{names[side]}, {key}"
                        )
                        servers[side].append(server)
                        server.start(serve_timeout_s)
                        server.check_protocol(P.PROTOCOL)
                remote = {
                    side: [f"remote:url={s.url},format={wire_format}" for s in servers[side]]
                    for side in SIDES
                }
                order = [r for pair in zip(remote["base"], remote["candidate"], strict=True) for r in pair]
                combined = run_benchmark(
                    order,
                    data,
                    split=split,
                    limit=limit,
                    pacing=pacing,
                    chunk_ms=chunk_ms,
                    concurrency=concurrency,
                    timeout_s=timeout_s,
                    vad=vad,
                    out=out / "combined",
                    progress=progress,
                    alternate=True,
                )
                for side in SIDES:
                    for server in servers[side]:
                        if not server.alive():
                            what = (
                                f"{server.label}: its server exited (code {server.proc.returncode}) during the "
                                f"run; the end of its log ({server.log}):\n{log_tail(server.log)}"
                            )
                            (problems if side == "base" else regressions).append(what)
            except ServeError as exc:
                raise NotComparable(str(exc)) from None
            finally:
                for side in SIDES:
                    for server in servers[side]:
                        server.stop()
    except RevisionError as exc:
        raise NotComparable(str(exc)) from None
    records = {side: [s.describe() for s in servers[side]] for side in SIDES}
    runs = {}
    for side in SIDES:
        backends = []
        for key, record in zip(keys, records[side], strict=True):
            served = dict(record.get("backend") or {})
            backends.append(
                {**served, "key": key, "served": {k: v for k, v in record.items() if k != "backend"}}
            )
        git = {"commit": revision.commit, "dirty": False} if side == "base" else state
        runs[side] = split_run(
            combined,
            out / side,
            {str(BackendSpec.parse(r)): key for r, key in zip(remote[side], keys, strict=True)},
            backends,
            {
                "run_id": f"{side}-{str(git.get('commit'))[:8]}{'+dirty' if git.get('dirty') else ''}",
                "git": git,
                "gate_side": {"side": side, "revision": revision.subject, "tree": str(trees[side])},
            },
        )
    return SideBySide(
        out=out,
        revision=revision,
        candidate_state=state,
        base_run=runs["base"],
        candidate_run=runs["candidate"],
        sides=records,
        keys=keys,
        problems=problems,
        regressions=regressions,
    )


def served_differences(measured: SideBySide) -> dict[str, list[str]]:
    """Per spec key: served options and engine variants that differ between the sides (reported, allowed)."""
    from .gate import option_differences

    out: dict[str, list[str]] = {}
    for key, base, cand in zip(
        measured.keys, measured.sides["base"], measured.sides["candidate"], strict=True
    ):
        b, c = base.get("backend") or {}, cand.get("backend") or {}
        why = option_differences(b, c, set())
        if b.get("engine") != c.get("engine"):
            why.append(f"engine {b.get('engine')} vs {c.get('engine')}")
        if why:
            out[key] = why
    return out


def failure_verdicts(measured: SideBySide) -> list[Verdict]:
    """``worse`` when the candidate failed more utterances than REV: a crash is a regression, not noise."""
    from .gate_files import load_candidate

    base, cand = load_candidate(measured.base_run), load_candidate(measured.candidate_run)
    out = []
    for key in measured.keys:
        nb = sum(s == "failed" for s in (base.status.get(key) or {}).values())
        nc = sum(s == "failed" for s in (cand.status.get(key) or {}).values())
        if nc > nb:
            out.append(
                Verdict(
                    key,
                    "failed utterances",
                    "worse",
                    float(nb),
                    float(nc),
                    change=f"+{nc - nb}",
                    n=(len(base.status.get(key) or {}), len(cand.status.get(key) or {})),
                    note="the candidate failed more utterances (see candidate/run.json): a failure is not noise",
                )
            )
    return out


def judge(
    measured: SideBySide,
    rules: list[str] | None = None,
    *,
    alpha: float = DEFAULT_ALPHA,
    test: str = DEFAULT_TEST,
) -> tuple[list[Verdict], int]:
    """(verdicts, exit code) of the measured sides under ``rules`` (default :data:`AGAINST_RULES`)."""
    from .gate_files import load_candidate

    parsed = parse_rules(list(rules or AGAINST_RULES))
    allowed = {
        d.split()[1]
        for diffs in served_differences(measured).values()
        for d in diffs
        if d.startswith("option")
    }
    verdicts = compare(
        load_candidate(measured.base_run),
        load_candidate(measured.candidate_run),
        parsed,
        alpha=alpha,
        allow_options=allowed,
        test=test,
    )
    verdicts += failure_verdicts(measured)
    if measured.regressions or any(v.verdict == "worse" for v in verdicts):
        return verdicts, EXIT_REGRESSION
    if measured.problems or incomparable(verdicts):
        return verdicts, EXIT_NOT_COMPARABLE
    return verdicts, EXIT_PASSED


def sides_table(measured: SideBySide) -> str:
    """Markdown: how each side of each spec was run (tree, commit, server, engine, load time)."""
    rows = ["| backend | side | code | served | engine | load (s) |", "|---|---|---|---|---|---|"]
    state = measured.candidate_state
    code = {
        "base": f"`{measured.revision.short}` {measured.revision.subject} (temporary git worktree)",
        "candidate": f"working tree at `{str(state.get('commit'))[:12]}`"
        + (" + uncommitted changes" if state.get("dirty") else ""),
    }
    for i, key in enumerate(measured.keys):
        for side in SIDES:
            rec = measured.sides[side][i]
            engine = (rec.get("backend") or {}).get("engine")
            engine_text = f"{engine.get('variant')}, {engine.get('slots')} slots" if engine else "-"
            rows.append(
                f"| {key} | {side} | {code[side]} | `s2s-bench serve` from `{rec['tree']}` on {rec['url']}, "
                f"protocol {rec.get('protocol')} | {engine_text} | {rec.get('load_s')} |"
            )
    return "\n".join(rows)


def report_markdown(measured: SideBySide, verdicts: list[Verdict], code: int, *, alpha: float) -> str:
    """The gate's report: what was compared, how the sides were run, the verdicts and the outcome."""
    meta = json.loads((measured.candidate_run / "run.json").read_text(encoding="utf-8"))
    d, s = meta.get("data") or {}, meta.get("settings") or {}
    lines = [
        f"# Gate: the working tree against {measured.revision.short}",
        "",
        f"- against: `{measured.revision.commit}` {measured.revision.subject}; chosen by {measured.revision.chosen_by}",
        f"- data: {d.get('name')} split={d.get('split')} n={d.get('n')} (ids_sha256 {str(d.get('ids_sha256'))[:12]}), "
        f"pacing {s.get('pacing')}, chunk {s.get('chunk_ms')} ms, vad {s.get('vad')}",
        "- how: each backend spec served by its own tree's `s2s-bench serve` in its own process on 127.0.0.1 (same "
        "Python and packages), both sides measured through `remote` by this harness in one run "
        f"(`{measured.out / 'combined'}`), interleaved per utterance with the order alternating; split into "
        f"`{measured.base_run}` and `{measured.candidate_run}`",
        "",
        sides_table(measured),
        "",
    ]
    for key, diffs in served_differences(measured).items():
        lines.append(
            f"**Served differently** ({key}): {'; '.join(diffs)} (each tree's own defaults; measured as served)"
        )
    for what in measured.problems:
        lines += ["", f"**NOT COMPARABLE**: {what}"]
    for what in measured.regressions:
        lines += ["", f"**REGRESSION**: {what}"]
    lines += [
        "",
        verdict_table(verdicts, alpha=alpha, strict=True).rstrip(),
        "",
        f"**Result: {EXIT_CODES[code]}** (exit {code}).",
    ]
    return "\n".join(lines) + "\n"


def write_outcome(
    measured: SideBySide, verdicts: list[Verdict], code: int, *, alpha: float
) -> dict[str, Path]:
    """``gate.md`` and ``gate.json`` (schema :data:`AGAINST_SCHEMA`) in the gate's folder."""
    from .gate import verdicts_json

    md = measured.out / "gate.md"
    md.write_text(report_markdown(measured, verdicts, code, alpha=alpha), encoding="utf-8")
    doc: dict[str, Any] = {
        "schema": AGAINST_SCHEMA,
        "revision": {
            "commit": measured.revision.commit,
            "subject": measured.revision.subject,
            "chosen_by": measured.revision.chosen_by,
        },
        "candidate": measured.candidate_state,
        "runs": {
            "base": str(measured.base_run),
            "candidate": str(measured.candidate_run),
            "combined": str(measured.out / "combined"),
        },
        "sides": measured.sides,
        "served_differences": served_differences(measured),
        "problems": measured.problems,
        "regressions": measured.regressions,
        "exit_code": code,
        "result": EXIT_CODES[code],
        **verdicts_json(
            verdicts, baseline=str(measured.base_run), candidate=str(measured.candidate_run), alpha=alpha
        ),
    }
    doc["schema"] = AGAINST_SCHEMA
    js = measured.out / "gate.json"
    js.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    return {"markdown": md, "json": js}


def not_comparable_report(out: Path, against: str | None, why: str) -> str:
    """Write ``gate.md``/``gate.json`` for a gate that could not measure at all, and return the Markdown."""
    text = f"# Gate: NOT COMPARABLE\n\nagainst: {against or '(default)'}\n\n**{why}**\n\n**Result: {EXIT_CODES[3]}** (exit 3).\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "gate.md").write_text(text, encoding="utf-8")
    doc = {
        "schema": AGAINST_SCHEMA,
        "against": against,
        "exit_code": 3,
        "result": EXIT_CODES[3],
        "problems": [why],
    }
    (out / "gate.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return text
