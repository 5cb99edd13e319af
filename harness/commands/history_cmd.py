"""``s2s-bench history RUN_DIR [RUN_DIR ...] --out DIR``: each metric per commit (asv's graphs), as HTML + Markdown."""

from __future__ import annotations

import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "history",
        help="plot each metric per commit (median with 95%% CI, one line per backend) from many runs",
        description="Place every run at its git commit, order the commits by commit time and plot each metric's "
        "median with its 95% CI per commit, one line per backend, into history.html (self-contained), "
        "history.md and history.json. A gate's folder (base/, candidate/) counts as both of its runs.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (or gate folders)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for history.html, history.md, img/")
    p.add_argument("--title", default=None, help="page title")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        from ..report import build_history
    except ModuleNotFoundError as exc:
        print(
            f"s2s-bench history needs the `report` extra ({exc.name} is missing): pip install 's2s-bench[report]'",
            file=sys.stderr,
        )
        return 2
    from ..report.runs import RunFormatError

    try:
        paths = build_history(args.runs, args.out, title=args.title)
    except (RunFormatError, FileNotFoundError) as exc:
        print(f"s2s-bench history: error: {exc}", file=sys.stderr)
        return 2
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0
