"""``s2s-bench gate``: fail (exit 1) when a candidate run regresses against a baseline; 2 on a usage error."""

from __future__ import annotations

import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "gate",
        help="compare a candidate run with a baseline and fail on regressions",
        description="Verdict per backend and rule: worse, better, ~ (not significant), same, x (not comparable). "
        "Exit code 1 on any regression, 2 on a usage error. Rules: METRIC[.STAT][@REFERENCE]:[+|-]THRESHOLD[,FLOOR], "
        "e.g. ttfa.p50:+10%, ttfa.p95:+20%,20ms, wer:+0.5pt, ttfa.p50@loopback:+10% (see docs/reports.md).",
    )
    p.add_argument("--baseline", metavar="RUN_OR_JSON", help="baseline run folder or saved baseline .json")
    p.add_argument("--candidate", metavar="RUN", help="candidate run folder")
    p.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="RULE",
        help="gate rule (repeatable); default: ttfa.p50:+10%%,10ms and ttfa.p95:+20%%,20ms",
    )
    p.add_argument("--alpha", type=float, default=None, help="Mann-Whitney significance level (default 0.05)")
    p.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="KEY",
        help="gate only this backend key of the candidate (repeatable; default all)",
    )
    p.add_argument(
        "--allow-option",
        action="append",
        default=[],
        metavar="NAME",
        help="a backend option allowed to differ (measures what changing it costs)",
    )
    p.add_argument(
        "--allow-machine-change",
        action="store_true",
        help="compare runs from different machine classes (sensible only for @reference ratio rules)",
    )
    p.add_argument(
        "--save-baseline", metavar="RUN", help="write RUN as a compact baseline JSON to --out and exit"
    )
    p.add_argument(
        "--out",
        metavar="PATH",
        help="where to write the verdict table (.md) or, with --save-baseline, the JSON",
    )
    p.add_argument(
        "--json", metavar="PATH", help="also write the verdicts as JSON (schema s2s-bench.verdicts/1)"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ..gate import (
        DEFAULT_ALPHA,
        DEFAULT_RULES,
        GateUsageError,
        compare,
        load_baseline,
        load_candidate,
        parse_rules,
        regressed,
        save_baseline,
        verdict_table,
        verdicts_json,
    )

    try:
        if args.save_baseline:
            if not args.out:
                raise GateUsageError(
                    "--save-baseline needs --out PATH.json (e.g. reports/baselines/NAME.json)"
                )
            path = save_baseline(load_candidate(args.save_baseline), args.out)
            print(f"baseline written: {path}")
            return 0
        if not args.baseline or not args.candidate:
            raise GateUsageError(
                "gate needs --baseline RUN_OR_JSON and --candidate RUN (or --save-baseline RUN)"
            )
        rules = parse_rules(args.rule or list(DEFAULT_RULES))
        alpha = DEFAULT_ALPHA if args.alpha is None else args.alpha
        verdicts = compare(
            load_baseline(args.baseline),
            load_candidate(args.candidate),
            rules,
            alpha=alpha,
            backends=args.backend or None,
            allow_options=set(args.allow_option),
            allow_machine_change=args.allow_machine_change,
        )
    except (GateUsageError, ModuleNotFoundError) as exc:
        print(f"s2s-bench gate: error: {exc}", file=sys.stderr)
        return 2
    table = verdict_table(verdicts, alpha=alpha)
    print(f"baseline: {args.baseline}\ncandidate: {args.candidate}\n\n{table}")
    if args.out:
        from pathlib import Path

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            f"baseline: `{args.baseline}`, candidate: `{args.candidate}`\n\n{table}", encoding="utf-8"
        )
    if args.json:
        import json
        from pathlib import Path

        doc = verdicts_json(verdicts, baseline=str(args.baseline), candidate=str(args.candidate), alpha=alpha)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 1 if regressed(verdicts) else 0
