"""``s2s-bench report RUN_DIR [RUN_DIR ...] --out DIR``: report.md, report.html, per-utterance CSV, plots."""

from __future__ import annotations

import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="write a comparison report (Markdown + self-contained HTML + CSV) from one or more runs",
    )
    p.add_argument(
        "runs", nargs="+", metavar="RUN_DIR", help="run folders to report on (compared side by side)"
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="folder for report.md, report.html, utterances.csv"
    )
    p.add_argument("--title", default=None, help="report title")
    p.add_argument(
        "--ttfa-axis",
        choices=("auto", "linear", "log"),
        default="auto",
        help="TTFA axis of the plots (default auto: log when the backends' medians differ more than 10x)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        from ..report import build_report
    except ModuleNotFoundError as exc:
        print(
            f"s2s-bench report needs the `report` extra ({exc.name} is missing): pip install 's2s-bench[report]'",
            file=sys.stderr,
        )
        return 2
    from ..report.runs import RunFormatError

    try:
        paths = build_report(args.runs, args.out, title=args.title, ttfa_axis=args.ttfa_axis)
    except (RunFormatError, FileNotFoundError) as exc:
        print(f"s2s-bench report: error: {exc}", file=sys.stderr)
        return 2
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0
