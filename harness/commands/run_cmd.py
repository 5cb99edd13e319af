"""``s2s-bench run`` (measure backends) and ``s2s-bench rescore`` (recompute a run's summary from its events)."""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer but got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer but got {text}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number but got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite positive number but got {text}")
    return value


EXIT_CODES_HELP = """exit codes:
  0    complete; every backend within the failure policy
  1    complete, but a backend broke the failure policy (--max-failures; default: more than half of its
       utterances not ok, or none ok); everything measured is in the run folder
  2    usage error, nothing measured: bad option or backend spec, unknown data or split, a bad manifest,
       an --out that holds something else or cannot be written, a resume with other settings
  3    aborted: the run's files could not be written (disk full, read-only); finished utterances are
       kept, --resume continues once there is room
  4    --executor ray: a shard could not be finished (its workers kept dying, or a worker failed); what
       was measured is kept under OUT/shards, --resume continues
  130  interrupted by Ctrl-C (SIGINT); 128+N for signal N (143 SIGTERM, 129 SIGHUP): run.json says
       "interrupted", --resume continues
"""


SUITES = ("latency", "quality", "intelligibility")
"""latency: measure only; quality / intelligibility: measure, then score the outputs (harness.metrics)."""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="measure one or more backends on a dataset",
        description="Measure one or more backends on a dataset, side by side, into a run folder.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    p.add_argument(
        "--vad",
        choices=("auto", "silero", "energy"),
        default="auto",
        help="how the end of each input's speech is found (default auto: silero-vad when installed, else energy)",
    )
    p.add_argument("--seed", type=int, default=0)
    t = p.add_argument_group(
        "turn-taking (docs/turn-taking.md)",
        "--data turn-taking:DATA builds pause, interruption and backchannel scenarios from DATA's questions",
    )
    t.add_argument(
        "--endpointing",
        choices=("oracle", "system"),
        default="oracle",
        help="oracle: the harness says when the user's turn is over (end of file); system: it never does, the "
        "microphone stays open and the system (or the endpointer adapter in front of it) decides",
    )
    t.add_argument(
        "--endpointer-vad",
        choices=("auto", "silero", "energy"),
        default="auto",
        help="endpointing=system: the adapter's VAD (default auto: silero-vad when installed, else energy)",
    )
    t.add_argument(
        "--hangover-ms",
        type=float,
        default=500.0,
        help="endpointing=system: silence after speech that ends the user's turn (default 500)",
    )
    t.add_argument(
        "--min-speech-ms",
        type=float,
        default=250.0,
        help="endpointing=system: speech that starts a user turn, or barges in (default 250)",
    )
    t.add_argument(
        "--no-barge-in",
        action="store_true",
        help="endpointing=system: the adapter ignores speech during answers",
    )
    t.add_argument(
        "--tail",
        choices=("silence", "noise"),
        default="silence",
        help="endpointing=system: what the microphone hears after the file (default silence; noise: pink noise)",
    )
    t.add_argument("--tail-noise-dbfs", type=float, default=-55.0, help="with --tail noise: its RMS level")
    t.add_argument(
        "--settle-s",
        type=positive_float,
        default=1.5,
        help="endpointing=system, backends that endpoint themselves: stop listening after this long with no "
        "output (default 1.5)",
    )
    p.add_argument("--out", default=None, help="run folder (default runs/DATE-TIME-ID)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument(
        "--retry-failed",
        nargs="?",
        const="all",
        default=None,
        metavar="WHAT",
        help="with --resume (implied): also redo utterances whose last attempt is not ok: all of them, or only "
        "those with these statuses or error kinds, e.g. load,hang",
    )
    p.add_argument(
        "--max-failures",
        default=None,
        metavar="N|P%",
        help="failure policy: exit 1 when a backend has more than N (or P%%) utterances not ok, or none ok "
        "(default 50%%)",
    )
    p.add_argument(
        "--failure-statuses",
        default=None,
        metavar="S,...",
        help="statuses that count as failures for --max-failures (default: every status except ok)",
    )
    p.add_argument(
        "--strict-data",
        action="store_true",
        help="refuse (exit 2) a built-in set built without one of its reference voices (make bench uses this)",
    )
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
    add_distribution_arguments(p, shard=True)
    p.set_defaults(func=run)

    r = subparsers.add_parser(
        "rescore",
        help="recompute a run's summary from its event log (and its inputs where the log lacks speech ends)",
    )
    r.add_argument("run_dir")
    r.add_argument("--write", action="store_true", help="write the recomputed summary into run.json")
    r.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the recomputed summary differs from run.json, or if re-deriving onsets from the output "
        "WAVs, out_samples, event order or speech ends from the inputs disagrees with the log",
    )
    r.set_defaults(func=rescore)


def add_distribution_arguments(p, shard: bool = False) -> None:
    """``--shard`` (run only), ``--executor``, ``--shards``, ``--ray-resources``, ``--ray-retries``."""
    g = p.add_argument_group("distributing (docs/distributed.md)")
    if shard:
        g.add_argument(
            "--shard",
            default=None,
            metavar="I/N",
            help="measure only shard I of N of the utterances (I from 0; the same set on every machine), for a "
            "scheduler's array job; join the shards with s2s-bench merge",
        )
    g.add_argument(
        "--executor",
        default="local",
        metavar="local|ray[:ADDRESS]",
        help="where to run: local (this process, default) or ray: shards as Ray tasks on the cluster at ADDRESS "
        "(auto, HOST:PORT, ray://HOST:10001; none: RAY_ADDRESS or a new local Ray), merged into --out",
    )
    g.add_argument(
        "--shards",
        type=positive_int,
        default=None,
        metavar="N",
        help="ray: shards per backend (default: as many as the cluster runs at once)",
    )
    g.add_argument(
        "--ray-resources",
        action="append",
        default=None,
        metavar="BACKEND:KEY=VALUE,...",
        help="ray: task resources of a backend (name or key; `score` for scoring), e.g. custom:num_gpus=1,num_cpus=4 "
        "(num_cpus, num_gpus, memory=16G, custom resources; default num_cpus=1; repeatable)",
    )
    g.add_argument(
        "--ray-retries",
        type=int,
        default=3,
        metavar="K",
        help="ray: how many times a shard whose worker died is resumed on another worker (default 3)",
    )


def ray_options(args):
    """The Ray executor's options from the command line, or None for the local executor; raises ValueError."""
    from ..executors import ExecutorSpec, RayOptions, parse_resources

    spec = ExecutorSpec.parse(args.executor)
    if spec.kind == "local":
        for flag, value in (("--shards", args.shards), ("--ray-resources", args.ray_resources)):
            if value:
                raise ValueError(
                    f"{flag} is for --executor ray (the local executor runs one shard: --shard I/N)"
                )
        return None
    if getattr(args, "shard", None):
        raise ValueError(
            "--shard is for the local executor; --executor ray makes its own shards (--shards N)"
        )
    if args.ray_retries < 0:
        raise ValueError(f"Expected --ray-retries >= 0 but got {args.ray_retries}")
    return RayOptions(spec.address, args.shards, parse_resources(args.ray_resources), args.ray_retries)


def run(args) -> int:
    import sys

    from ..backend import BackendError
    from ..display import failure_lines, metrics_table, summary_table, turns_table
    from ..outcome import (
        DEFAULT_MAX_FAILURES,
        EXIT_OK,
        EXIT_SHARDS_FAILED,
        EXIT_STORAGE,
        EXIT_TOO_MANY_FAILURES,
        EXIT_USAGE,
        FailurePolicy,
        final_statuses,
        signal_exit_code,
    )
    from ..results import load_run
    from ..runner import RunError, run_benchmark
    from ..storage import StorageError

    def usage(message: str) -> int:
        print(f"s2s-bench run: error: {message}", file=sys.stderr)
        return EXIT_USAGE

    try:
        policy = FailurePolicy.parse(args.max_failures or DEFAULT_MAX_FAILURES, args.failure_statuses)
    except ValueError as exc:
        return usage(str(exc))
    retry = None
    if args.retry_failed:
        retry = True if args.retry_failed == "all" else {w.strip() for w in args.retry_failed.split(",") if w}
    from ..turns.endpointer import EndpointerSettings

    endpointer = EndpointerSettings(
        vad=args.endpointer_vad,
        hangover_ms=args.hangover_ms,
        min_speech_ms=args.min_speech_ms,
        barge_in=not args.no_barge_in,
    )
    try:
        on_ray = ray_options(args)
    except ValueError as exc:
        return usage(str(exc))
    measure = dict(
        split=args.split,
        limit=args.limit,
        pacing=args.pacing,
        chunk_ms=args.chunk_ms,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        warmup=args.warmup,
        vad=args.vad,
        seed=args.seed,
        out=args.out,
        suite=args.suite,
        resume=args.resume,
        retry_failed=retry or False,
        strict_data=args.strict_data,
        save_audio=not args.no_audio,
        progress=not args.quiet,
        endpointing=args.endpointing,
        tail=args.tail,
        tail_noise_dbfs=args.tail_noise_dbfs,
        settle_s=args.settle_s,
        endpointer=endpointer,
    )
    try:
        if on_ray is not None:
            from ..executors.ray_executor import ShardsFailed, run_on_ray

            try:
                out = run_on_ray(args.backend, args.data, options=on_ray, **measure)
            except ShardsFailed as exc:
                print(f"s2s-bench run: {exc}", file=sys.stderr)
                return EXIT_SHARDS_FAILED
        else:
            out = run_benchmark(args.backend, args.data, shard=args.shard, **measure)
    except (RunError, BackendError, ValueError, FileNotFoundError) as exc:
        return usage(str(exc))
    except StorageError as exc:
        print(
            f"s2s-bench run: aborted: {exc}. Finished utterances are kept in {args.out or 'the run folder'}; "
            "free space and continue with --resume",
            file=sys.stderr,
        )
        return EXIT_STORAGE
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", 2)
        where = f" in {args.out}" if args.out else ""
        print(
            f"s2s-bench run: interrupted ({exc or 'SIGINT'}); finished utterances are kept{where}: "
            "continue with --resume",
            file=sys.stderr,
        )
        return signal_exit_code(signum)
    if args.suite != "latency":
        from ..metrics.scoring import SUITE_METRICS, score_run

        print(f"scoring ({args.suite}: {', '.join(SUITE_METRICS[args.suite])}) ...", file=sys.stderr)
        if on_ray is not None:
            from ..executors.ray_executor import score_on_ray

            score_on_ray(
                out, list(SUITE_METRICS[args.suite]), args.asr_judge, args.target, args.score_workers, on_ray
            )
        else:
            score_run(
                out,
                metrics=list(SUITE_METRICS[args.suite]),
                judge=args.asr_judge,
                target=args.target,
                workers=args.score_workers,
            )
    run_ = load_run(out)
    print(
        f"\nrun folder: {out}  (pacing={args.pacing}, chunk={args.chunk_ms:g} ms, concurrency={args.concurrency}, "
        f"endpointing={args.endpointing})"
    )
    print(summary_table(run_.summary))
    if turns_table(run_.summary):
        print("\nturn-taking (harness.turns.metrics; FDB = Full-Duplex-Bench's definitions):")
        print(turns_table(run_.summary))
    if args.suite != "latency":
        print(metrics_table(run_.summary))
    for line in failure_lines(run_.summary):
        print(line)
    for backend in run_.meta.get("backends", []):  # repeated after the table, where they cannot scroll away
        for warning in backend.get("warnings", []):
            print(f"WARNING: {warning}", file=sys.stderr)
    outcomes = policy.judge(final_statuses(run_.events, run_.backend_keys))
    broken = [o for o in outcomes if o.broken]
    print(f"\nfailure policy: {policy.describe()}")
    for o in outcomes:
        print(("  FAILED " if o.broken else "  ok     ") + o.line())
    if broken:
        print(
            f"s2s-bench run: {len(broken)} backend(s) broke the failure policy (exit {EXIT_TOO_MANY_FAILURES})",
            file=sys.stderr,
        )
        return EXIT_TOO_MANY_FAILURES
    return EXIT_OK


def rescore(args) -> int:
    import json
    import sys

    from ..display import summary_table, turns_table
    from ..rescore import check_run, rescore
    from ..results import load_run, write_json_atomic

    try:
        run_ = load_run(args.run_dir)
    except (FileNotFoundError, ValueError) as exc:
        print(f"s2s-bench rescore: error: {exc}", file=sys.stderr)
        return 2
    fresh, notes = rescore(run_)
    stored = run_.meta.get("summary", {})
    latency_keys = lambda s: {b: {k: v for k, v in v.items() if k != "metrics"} for b, v in s.items()}  # noqa: E731
    same = json.dumps(latency_keys(fresh), sort_keys=True) == json.dumps(latency_keys(stored), sort_keys=True)
    print(summary_table(fresh))
    if turns_table(fresh):
        print(turns_table(fresh))
    for note in notes:
        print("note:", note)
    print("\nmatches run.json: " + ("yes" if same else "NO"))
    problems = check_run(run_) if args.check else []
    for problem in problems:
        print("check:", problem)
    if args.check:
        print(f"folder check: {len(problems)} problem(s)")
    if args.write:
        meta = dict(run_.meta)
        for key, s in fresh.items():
            if "metrics" in stored.get(key, {}):
                s["metrics"] = stored[key]["metrics"]
        meta["summary"] = fresh
        write_json_atomic(run_.path / "run.json", meta)
    return 1 if args.check and (not same or problems) else 0
