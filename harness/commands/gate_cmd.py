"""``s2s-bench gate``: fail (exit 1) when a candidate run regresses against a baseline; 2 on a usage error."""

from __future__ import annotations

import sys

from . import add_against_argument


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "gate",
        help="compare a candidate run with a baseline and fail on regressions",
        description="Verdict per backend and rule: worse, better, ~ (not significant), same, x (not comparable). "
        "Exit code 1 on any regression, 2 on a usage error. Rules: METRIC[.STAT][@REFERENCE]:[+|-]THRESHOLD[,FLOOR], "
        "e.g. ttfa.p50:+10%, ttfa.p95:+20%,20ms, wer:+0.5pt, ttfa.p50@loopback:+10% (see docs/reports.md).",
    )
    add_against_argument(
        p,
        "measure git revision REV beside the working tree, in one run, and gate on it; exit 3 when the sides "
        "cannot be compared",
    )
    p.add_argument("--baseline", metavar="RUN_OR_JSON", help="baseline run folder or saved baseline .json")
    p.add_argument("--candidate", metavar="RUN", help="candidate run folder")
    p.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="RULE",
        help="gate rule (repeatable); default: ttfa.p50:+10%%,10ms and ttfa.p95:+20%%,20ms; with --against: "
        "ttfa.p50:+5%%,10ms, ttfa.p95:+20%%,20ms, unanswered:+10pt and rtf.p50:+10%%,0.02",
    )
    p.add_argument("--alpha", type=float, default=None, help="Mann-Whitney significance level (default 0.05)")
    p.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="KEY",
        help="gate only this backend key of the candidate (repeatable; default all); with --against: a backend "
        "SPEC to serve and measure on both sides (repeatable, required)",
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
        "--test",
        choices=("mannwhitney", "wilcoxon"),
        default=None,
        help="significance test: mannwhitney (independent samples; the default for --baseline) or wilcoxon "
        "(signed-rank, paired by utterance; the default for --against)",
    )
    p.add_argument(
        "--advisory",
        action="store_true",
        help="print the verdicts but never fail (exit 0 unless a usage error): history, not a decision",
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
    a = p.add_argument_group("with --against (out: the gate's folder, default reports/runs/gate-against)")
    a.add_argument("--data", default="telugu-mini-qa", help="dataset (default telugu-mini-qa)")
    a.add_argument("--split", default="test", help="split of the data (default test; 'all' for every split)")
    a.add_argument("--limit", type=int, default=16, help="first N utterances (default 16)")
    a.add_argument("--pacing", choices=("realtime", "fast"), default="realtime")
    a.add_argument("--chunk-ms", type=float, default=20.0, help="input chunk length (default 20 ms)")
    a.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for an answer (default 60)")
    a.add_argument("--vad", choices=("auto", "silero", "energy"), default="auto")
    a.add_argument("--format", choices=("pcm16", "f32"), default="pcm16", help="audio on the wire (pcm16)")
    a.add_argument(
        "--serve-timeout", type=float, default=600.0, help="seconds a side's server may take to load (600)"
    )
    a.add_argument(
        "--allow-incomparable",
        action="store_true",
        help="exit 0 instead of 3 when the sides cannot be compared (still reported loudly)",
    )
    p.set_defaults(func=run)


def run_against(args) -> int:
    from pathlib import Path

    from ..gate import DEFAULT_ALPHA, GateUsageError
    from ..gate_against import (
        DEFAULT_TEST,
        EXIT_NOT_COMPARABLE,
        EXIT_PASSED,
        EXIT_USAGE,
        NotComparable,
        judge,
        measure_side_by_side,
        not_comparable_report,
        write_outcome,
    )
    from ..runner import RunError

    out = args.out or "reports/runs/gate-against"
    alpha = DEFAULT_ALPHA if args.alpha is None else args.alpha
    try:
        from ..gate import parse_rules

        if args.rule:
            parse_rules(args.rule)  # a bad rule is a usage error before anything is measured
        measured = measure_side_by_side(
            args.backend,
            args.against or None,
            data=args.data,
            split=None if args.split == "all" else args.split,
            limit=args.limit,
            pacing=args.pacing,
            chunk_ms=args.chunk_ms,
            timeout_s=args.timeout,
            vad=args.vad,
            out=out,
            wire_format=args.format,
            serve_timeout_s=args.serve_timeout,
            progress=True,
        )
        verdicts, code = judge(measured, args.rule or None, alpha=alpha, test=args.test or DEFAULT_TEST)
    except (GateUsageError, RunError, ModuleNotFoundError) as exc:
        print(f"s2s-bench gate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NotComparable as exc:
        print(not_comparable_report(Path(out), args.against, str(exc)), file=sys.stderr)
        return EXIT_PASSED if args.allow_incomparable or args.advisory else EXIT_NOT_COMPARABLE
    paths = write_outcome(measured, verdicts, code, alpha=alpha)
    print(paths["markdown"].read_text(encoding="utf-8"))
    print(f"written: {paths['markdown']}, {paths['json']}")
    if args.advisory or (code == EXIT_NOT_COMPARABLE and args.allow_incomparable):
        return EXIT_PASSED
    return code


def run(args) -> int:
    if args.against is not None:
        return run_against(args)
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
            test=args.test or "mannwhitney",
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
    if args.advisory:
        print("(advisory: history, not deciding; exit 0)")
        return 0
    return 1 if regressed(verdicts) else 0
