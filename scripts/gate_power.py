"""The power of ``s2s-bench gate --against``, measured: planted slowdowns and an identical revision, repeated.

    python scripts/gate_power.py --repeats 10 --limit 24 --out reports/runs/gate-power --report reports/gate-power

In a throwaway clone of this checkout's HEAD (nothing in this checkout changes) the script commits

- **planted**: ``custom``'s engine sleeps 25% of each tick's own duration after the tick (25% more time per
  frame, the CPU left free, as a slower kernel would be) and ``loopback`` answers 20 ms later;
- **identical**: an empty commit (the same tree as HEAD),

and runs ``s2s-bench gate --against HEAD`` from each, ``--repeats`` times, alternating planted and identical so
that drift of the machine hits both alike. Every gate keeps its two split run folders, so the verdicts are then
re-derived offline for several sample sizes (the first n utterances of each run), both significance tests
(Wilcoxon signed-rank paired by utterance, and Mann-Whitney) and every candidate rule set (``--rules NAME=RULE;RULE``):
one set of measurements gives the whole power table. A planted slowdown counts as detected for a backend when
that backend gets a ``worse`` verdict; the identical revision counts as a false alarm when any backend does.

Writes ``<report>.md`` and ``<report>.json`` (ready to commit: the command, the CPU, the load average during the
runs, every repeat's verdicts) and prints the Markdown. The figures need a quiet machine: on a shared one, say so
with ``--note``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PLANTS = {
    "custom_model/engine/engine.py": [
        ("import threading\n", "import threading\nimport time\n"),
        (
            "                    self.tick(batch, frames)\n",
            "                    _tick_t0 = time.perf_counter()\n"
            "                    self.tick(batch, frames)\n"
            "                    time.sleep(0.25 * (time.perf_counter() - _tick_t0))  # gate power: planted +25%\n",
        ),
    ],
    "backends/loopback.py": [
        (
            'return self.t_end + (self.o["delay_ms"] + k * self.o["chunk_ms"] * self.o["rtf"]) / 1000.0',
            'return self.t_end + 0.020 + (self.o["delay_ms"] + k * self.o["chunk_ms"] * self.o["rtf"]) / 1000.0',
        )
    ],
}
"""File -> (anchor, replacement): the planted slowdowns. A missing anchor stops the script (the plant would
silently not happen)."""
PLANTED_BACKENDS = {"custom": "+25% time per engine tick", "loopback": "+20 ms before the first chunk"}
DEFAULT_RULESETS = {
    "default": "ttfa.p50:+5%,10ms;ttfa.p95:+20%,20ms;unanswered:+10pt;rtf.p50:+10%,0.02",
    "ttfa-only": "ttfa.p50:+5%,10ms;ttfa.p95:+20%,20ms;unanswered:+10pt",
    "ttfa-5ms": "ttfa.p50:+5%,5ms;ttfa.p95:+20%,20ms;unanswered:+10pt",
    "rtf-5%": "ttfa.p50:+5%,10ms;ttfa.p95:+20%,20ms;unanswered:+10pt;rtf.p50:+5%,0.01",
}
"""``default`` is harness.gate_against.AGAINST_RULES; ``ttfa-only`` the defaults before the RTF rule (2026-12-04),
``ttfa-5ms`` those with a 5 ms floor, ``rtf-5%`` a tighter RTF rule: what each rule costs or buys."""


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")
        )
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "gate-power", "GIT_AUTHOR_EMAIL": "gate-power@localhost"}
    env |= {"GIT_COMMITTER_NAME": "gate-power", "GIT_COMMITTER_EMAIL": "gate-power@localhost"}
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode:
        raise SystemExit(f"gate_power: git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def make_clone(work: Path) -> tuple[Path, dict[str, str]]:
    """A clone of this checkout's HEAD with the two throwaway commits; {name: commit}."""
    clone = work / "clone"
    git(ROOT, "clone", "--quiet", str(ROOT), str(clone))
    base = git(ROOT, "rev-parse", "HEAD")
    git(clone, "checkout", "--quiet", "--detach", base)
    git(clone, "commit", "--quiet", "--allow-empty", "-m", "gate power: identical revision")
    identical = git(clone, "rev-parse", "HEAD")
    git(clone, "checkout", "--quiet", "--detach", base)
    for rel, edits in PLANTS.items():
        path = clone / rel
        text = path.read_text(encoding="utf-8")
        for anchor, replacement in edits:
            if text.count(anchor) != 1:
                raise SystemExit(
                    f"gate_power: cannot plant in {rel}: anchor {anchor!r} found {text.count(anchor)} times"
                )
            text = text.replace(anchor, replacement)
        path.write_text(text, encoding="utf-8")
    git(
        clone, "commit", "--quiet", "-am", "gate power: planted slowdowns (custom +25%/tick, loopback +20 ms)"
    )
    planted = git(clone, "rev-parse", "HEAD")
    return clone, {"base": base, "identical": identical, "planted": planted}


def run_gate(clone: Path, commit: str, base: str, args, out: Path) -> dict:
    """One ``gate --against base`` from ``commit`` in the clone; its exit code, wall time and load average."""
    git(clone, "checkout", "--quiet", "--detach", commit)
    cmd = [
        sys.executable,
        "-m",
        "harness.cli",
        "gate",
        "--against",
        base,
        "--data",
        args.data,
        "--split",
        args.split,
    ]
    cmd += ["--limit", str(args.limit), "--pacing", args.pacing, "--out", str(out)]
    for spec in args.backend:
        cmd += ["--backend", spec]
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=clone, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    (out.parent / f"{out.name}.log").write_text(done.stdout + "\n" + done.stderr, encoding="utf-8")
    return {
        "exit_code": done.returncode,
        "wall_s": round(wall, 1),
        "load_start": load0,
        "load_end": os.getloadavg()[0],
    }


def restrict(run, utts: list[str]):
    """``run`` with only the utterances ``utts`` (the first n of the data)."""
    from harness.report.runs import RunData

    keep = set(utts)
    samples = {
        b: {m: {u: v for u, v in vals.items() if u in keep} for m, vals in per.items()}
        for b, per in run.samples.items()
    }
    status = {b: {u: s for u, s in per.items() if u in keep} for b, per in run.status.items()}
    meta = {**run.meta, "data": {**run.meta["data"], "n": len(utts), "ids_sha256": None, "limit": len(utts)}}
    return RunData(source=run.source, meta=meta, samples=samples, status=status)


def evaluate(folder: Path, n: int, rules: str, test: str) -> dict[str, str]:
    """{backend key: worst verdict} of one gate folder, re-derived for the first ``n`` utterances."""
    from harness.gate import compare, parse_rules
    from harness.gate_files import load_candidate

    base, cand = load_candidate(folder / "base"), load_candidate(folder / "candidate")
    first = next(iter(cand.status.values()))
    order = sorted(first)  # utterance ids in data order (the built-in sets number them)
    base, cand = restrict(base, order[:n]), restrict(cand, order[:n])
    out: dict[str, str] = {}
    rank = {"worse": 4, "x": 3, "~": 2, "better": 1, "same": 0}
    allowed = set()  # served options that differ (each tree's own defaults): allowed, as the gate allows them
    for key in cand.backend_keys:
        bo, co = base.backend(key).get("options") or {}, cand.backend(key).get("options") or {}
        allowed |= {k for k in set(bo) | set(co) if bo.get(k) != co.get(k)}
    for v in compare(base, cand, parse_rules(rules.split(";")), test=test, allow_options=allowed):
        out[v.backend] = max(out.get(v.backend, "same"), v.verdict, key=rank.__getitem__)
    for key in cand.backend_keys:  # a candidate that fails more utterances is a regression (as the gate says)
        nb = sum(s == "failed" for s in base.status.get(key, {}).values())
        nc = sum(s == "failed" for s in cand.status.get(key, {}).values())
        if nc > nb:
            out[key] = "worse"
    return out


def planted_name(key: str) -> str:
    return next((name for name in PLANTED_BACKENDS if key.split(":")[0] == name), key)


def summarise(results: list[dict], sizes: list[int], rulesets: dict[str, str]) -> list[dict]:
    rows = []
    for name, rules in rulesets.items():
        for test in ("wilcoxon", "mannwhitney"):
            for n in sizes:
                row = {
                    "rules": name,
                    "test": test,
                    "n": n,
                    "detected": {},
                    "false_alarms": 0,
                    "identical_runs": 0,
                }
                for res in results:
                    verdicts = evaluate(Path(res["folder"]), n, rules, test)
                    if res["case"] == "identical":
                        row["identical_runs"] += 1
                        row["false_alarms"] += any(v == "worse" for v in verdicts.values())
                    else:
                        for key, verdict in verdicts.items():
                            hit = row["detected"].setdefault(planted_name(key), [0, 0])
                            hit[0] += verdict == "worse"
                            hit[1] += 1
                rows.append(row)
    return rows


def markdown(doc: dict) -> str:
    lines = [
        "# Gate power: planted slowdowns and an identical revision",
        "",
        f"Measured {doc['started']} to {doc['finished']} on {doc['machine']['cpu']} x{doc['machine']['cpu_count']} "
        f"(load average {doc['load']['min']:.1f}-{doc['load']['max']:.1f}, median {doc['load']['median']:.1f}, "
        f"during the gates). {doc['note']}",
        "",
        "```",
        doc["command"],
        "```",
        "",
        f"Each gate: `s2s-bench gate --against BASE` from the planted or the identical commit of a throwaway clone, "
        f"backends {', '.join(f'`{b}`' for b in doc['backends'])}, {doc['data']} (split {doc['split']}), "
        f"{doc['limit']} utterances per side, {doc['pacing']} pacing. Plants: "
        + "; ".join(f"`{k}` {v}" for k, v in PLANTED_BACKENDS.items())
        + f". Repeats: {doc['repeats']} of each case; wall time per gate {doc['wall_s']['min']:.0f}-"
        f"{doc['wall_s']['max']:.0f} s (median {doc['wall_s']['median']:.0f} s), servers' start included.",
        "",
        "Rule sets: " + "; ".join(f"`{k}` = `{v}`" for k, v in doc["rulesets"].items()) + ".",
        "",
        "| rules | test | n per side | "
        + " | ".join(f"{b} detected" for b in PLANTED_BACKENDS)
        + " | false alarms |",
        "|---|---|---|" + "---|" * len(PLANTED_BACKENDS) + "---|",
    ]
    for row in doc["table"]:
        hits = [row["detected"].get(b, [0, 0]) for b in PLANTED_BACKENDS]
        lines.append(
            f"| {row['rules']} | {row['test']} | {row['n']} | "
            + " | ".join(f"{h}/{t}" for h, t in hits)
            + f" | {row['false_alarms']}/{row['identical_runs']} |"
        )
    lines += [
        "",
        "Every gate (exit codes as the gate printed them; 1 = regression, 0 = passed, 3 = not comparable):",
        "",
    ]
    lines += ["| # | case | exit | wall (s) | load |", "|---|---|---|---|---|"]
    for i, res in enumerate(doc["runs"]):
        lines.append(
            f"| {i} | {res['case']} | {res['exit_code']} | {res['wall_s']} | {res['load_start']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--limit", type=int, default=24, help="utterances per side in each gate")
    p.add_argument(
        "--sizes", default="8,12,16,20,24", help="sample sizes to re-derive verdicts for (<= --limit)"
    )
    p.add_argument(
        "--backend", action="append", default=None, help="default: loopback:delay_ms=100 and custom"
    )
    p.add_argument("--data", default="telugu-mini-qa")
    p.add_argument("--split", default="test")
    p.add_argument("--pacing", default="realtime")
    p.add_argument("--rules", action="append", default=[], metavar="NAME=RULE;RULE", help="extra rule sets")
    p.add_argument("--out", default="reports/runs/gate-power", help="gate folders")
    p.add_argument("--report", default="reports/gate-power", help="writes REPORT.md and REPORT.json")
    p.add_argument("--note", default="", help="what else ran on the machine (printed under the title)")
    p.add_argument(
        "--analyse-only",
        action="store_true",
        help="re-derive the table from the gate folders of an earlier run in --out (its runs.json)",
    )
    p.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="DIR",
        help="with --analyse-only: add the gates of another batch (its --out folder, same backends, data and plants, "
        "measured on the same machine) to the table; repeatable",
    )
    args = p.parse_args()
    if args.add and not args.analyse_only:
        p.error("--add needs --analyse-only")
    args.backend = args.backend or ["loopback:delay_ms=100", "custom"]
    sizes = sorted({n for n in (int(x) for x in args.sizes.split(",")) if n <= args.limit} | {args.limit})
    rulesets = dict(DEFAULT_RULESETS)
    for text in args.rules:
        name, _, rules = text.partition("=")
        rulesets[name] = rules
    if git(ROOT, "status", "--porcelain", "--untracked-files=no"):
        print("gate_power: note: uncommitted changes are not in the clone; HEAD is measured", file=sys.stderr)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results: list[dict] = []
    commits: dict[str, str] = {}
    if args.analyse_only:
        earlier = json.loads((out / "runs.json").read_text(encoding="utf-8"))
        results, commits, started = earlier["runs"], earlier["commits"], earlier["started"]
        for extra in args.add:
            batch = json.loads((Path(extra) / "runs.json").read_text(encoding="utf-8"))
            offset = 1 + max((res["repeat"] for res in results), default=-1)
            results += [{**res, "repeat": res["repeat"] + offset} for res in batch["runs"]]
            commits = {**commits, f"batch {extra}": batch["commits"]}
    with tempfile.TemporaryDirectory(prefix="gate-power-") as work:
        if not args.analyse_only:
            clone, commits = make_clone(Path(work))
        for r in range(0 if args.analyse_only else args.repeats):
            cases = ("planted", "identical") if r % 2 == 0 else ("identical", "planted")
            for case in cases:
                folder = out / f"{case}-{r:02d}"
                res = run_gate(clone, commits[case], commits["base"], args, folder)
                res.update(case=case, repeat=r, folder=str(folder))
                results.append(res)
                record = {"started": started, "commits": commits, "runs": results}
                (out / "runs.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
                print(
                    f"[{len(results)}/{2 * args.repeats}] {case} exit {res['exit_code']} in {res['wall_s']} s "
                    f"(load {res['load_start']:.1f})",
                    file=sys.stderr,
                    flush=True,
                )
    from harness.results import machine_info

    loads = sorted(x for res in results for x in (res["load_start"], res["load_end"]))
    walls = sorted(res["wall_s"] for res in results)
    stats = lambda xs: {"min": xs[0], "max": xs[-1], "median": xs[len(xs) // 2]}  # noqa: E731
    doc = {
        "schema": "s2s-bench.gate-power/1",
        "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python scripts/gate_power.py " + shlex.join(sys.argv[1:]),
        "machine": {**machine_info(), "cpu": cpu_name()},
        "load": stats(loads),
        "wall_s": stats(walls),
        "note": args.note,
        "commits": commits,
        "backends": args.backend,
        "data": args.data,
        "split": args.split,
        "limit": args.limit,
        "pacing": args.pacing,
        "repeats": max(
            sum(r["case"] == "planted" for r in results), sum(r["case"] == "identical" for r in results)
        ),
        "rulesets": rulesets,
        "plants": PLANTED_BACKENDS,
        "table": summarise(results, sizes, rulesets),
        "runs": results,
    }
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    text = markdown(doc)
    report.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
