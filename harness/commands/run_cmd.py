"""``s2s-bench run`` (measure backends) and ``s2s-bench rescore`` (recompute a run's summary from its events)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer but got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number but got {text}")
    return value


SUITES = ("latency", "quality", "intelligibility")
"""latency: measure only; quality / intelligibility: measure, then score the outputs (harness.metrics)."""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("run", help="measure one or more backends on a dataset")
    p.add_argument(
        "--backend",
        "-b",
        action="append",
        required=True,
        metavar="SPEC",
        help="NAME[:key=value,...], e.g. loopback:delay_ms=150 (repeatable: measured side by side)",
    )
    p.add_argument("--suite", default="latency", choices=SUITES, help="what to measure (default: latency)")
    p.add_argument(
        "--data",
        default="synthetic-clips",
        help="dataset name (s2s-bench data list), CORPUS:PATH for a local corpus, or a manifest .jsonl",
    )
    p.add_argument("--split", default=None, help="only this split (train/dev/test)")
    p.add_argument("--limit", type=positive_int, default=None, help="first N utterances")
    p.add_argument(
        "--pacing",
        choices=("realtime", "fast"),
        default="realtime",
        help="realtime: input at the speed of speech; fast: as fast as the backend accepts",
    )
    p.add_argument("--chunk-ms", type=positive_float, default=20.0, help="input chunk length (default 20 ms)")
    p.add_argument("--concurrency", type=positive_int, default=1, help="simultaneous sessions per backend")
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        help="seconds allowed for the answer after the end of input (default 60)",
    )
    p.add_argument("--warmup", type=int, default=1, help="unmeasured warm-up turns per backend (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run folder (default runs/DATE-TIME-ID)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--no-audio", action="store_true", help="do not save output audio")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument(
        "--target",
        choices=("input", "response"),
        default="input",
        help="quality/intelligibility: score outputs against the input or the data's reference answer",
    )
    p.add_argument(
        "--asr-judge",
        default=None,
        metavar="SPEC",
        help="intelligibility: ASR judge, e.g. whisper:path=/models/whisper-small (else WER/CER are n/a)",
    )
    p.add_argument("--score-workers", type=positive_int, default=2, help="processes for scoring (default 2)")
    p.set_defaults(func=run)

    r = subparsers.add_parser("rescore", help="recompute a run's summary from its event log alone")
    r.add_argument("run_dir")
    r.add_argument("--write", action="store_true", help="write the recomputed summary into run.json")
    r.add_argument(
        "--check", action="store_true", help="exit 1 if the recomputed summary differs from run.json"
    )
    r.set_defaults(func=rescore)


def run(args) -> int:
    import sys

    from ..backend import BackendError
    from ..display import failure_lines, metrics_table, summary_table
    from ..results import load_run
    from ..runner import RunError, run_benchmark

    try:
        out = run_benchmark(
            args.backend,
            args.data,
            split=args.split,
            limit=args.limit,
            pacing=args.pacing,
            chunk_ms=args.chunk_ms,
            concurrency=args.concurrency,
            timeout_s=args.timeout,
            warmup=args.warmup,
            seed=args.seed,
            out=args.out,
            suite=args.suite,
            resume=args.resume,
            save_audio=not args.no_audio,
            progress=not args.quiet,
        )
    except (RunError, BackendError, ValueError, FileNotFoundError) as exc:
        print(f"s2s-bench run: error: {exc}", file=sys.stderr)
        return 2
    if args.suite != "latency":
        from ..metrics.scoring import SUITE_METRICS, score_run

        print(f"scoring ({args.suite}: {', '.join(SUITE_METRICS[args.suite])}) ...", file=sys.stderr)
        score_run(
            out,
            metrics=list(SUITE_METRICS[args.suite]),
            judge=args.asr_judge,
            target=args.target,
            workers=args.score_workers,
        )
    run_ = load_run(out)
    print(
        f"\nrun folder: {out}  (pacing={args.pacing}, chunk={args.chunk_ms:g} ms, concurrency={args.concurrency})"
    )
    print(summary_table(run_.summary))
    if args.suite != "latency":
        print(metrics_table(run_.summary))
    for line in failure_lines(run_.summary):
        print("failed:", line)
    for backend in run_.meta.get("backends", []):  # repeated after the table, where they cannot scroll away
        for warning in backend.get("warnings", []):
            print(f"WARNING: {warning}", file=sys.stderr)
    return 0


def rescore(args) -> int:
    import json

    from ..display import summary_table
    from ..latency import summarize
    from ..results import load_run, write_json_atomic

    run_ = load_run(args.run_dir)
    fresh = summarize(run_.events)
    stored = run_.meta.get("summary", {})
    latency_keys = lambda s: {b: {k: v for k, v in v.items() if k != "metrics"} for b, v in s.items()}  # noqa: E731
    same = json.dumps(latency_keys(fresh), sort_keys=True) == json.dumps(latency_keys(stored), sort_keys=True)
    print(summary_table(fresh))
    print("\nmatches run.json: " + ("yes" if same else "NO"))
    if args.write:
        meta = dict(run_.meta)
        for key, s in fresh.items():
            if "metrics" in stored.get(key, {}):
                s["metrics"] = stored[key]["metrics"]
        meta["summary"] = fresh
        write_json_atomic(run_.path / "run.json", meta)
    return 1 if args.check and not same else 0
