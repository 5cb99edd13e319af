"""``s2s-bench merge RUN... --out RUN``: shard run folders (``run --shard I/N``) into one run folder."""

from __future__ import annotations

import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "merge",
        help="merge shard run folders (run --shard I/N) into one run folder",
        description="Merge the run folders of the shards of one run (s2s-bench run --shard I/N) into one run "
        "folder that rescores, reports and gates like any other. Every shard must be complete and made the same "
        "way (suite, settings, data, VAD, code); together they must hold every utterance once. What is checked "
        "and written: docs/distributed.md.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="the shards' run folders (any order)")
    p.add_argument("--out", required=True, metavar="DIR", help="the merged run folder (new or empty)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..display import summary_table
    from ..executors.merge import MergeError, merge_runs
    from ..outcome import EXIT_STORAGE, EXIT_USAGE
    from ..storage import StorageError

    try:
        out, notes = merge_runs(args.runs, args.out)
    except MergeError as exc:
        print(f"s2s-bench merge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StorageError as exc:
        print(f"s2s-bench merge: aborted: {exc}", file=sys.stderr)
        return EXIT_STORAGE
    from ..results import load_run

    run_ = load_run(out)
    print(f"merged {len(args.runs)} shard(s) into {out}")
    print(summary_table(run_.summary))
    for note in notes:
        print("note:", note)
    return 0
