"""``s2s-bench data``: list datasets, build the synthetic Telugu sets, check audio files."""

from __future__ import annotations

import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("data", help="list, build and check datasets")
    sub = p.add_subparsers(dest="data_command", metavar="{list,build,check,collect}")
    sub.required = True

    ls = sub.add_parser(
        "list", help="registered datasets and corpus loaders, and whether built sets are cached"
    )
    ls.add_argument(
        "--cache", help="cache folder for built sets (default: $S2S_BENCH_CACHE/data or ~/.cache/...)"
    )
    ls.set_defaults(func=run_list)

    b = sub.add_parser("build", help="synthesise a built-in Telugu set into the cache")
    b.add_argument("name", help="telugu-mini, telugu-mini-qa, telugu-mini-cs or telugu-synth")
    b.add_argument("--cache", help="cache folder (the set goes to CACHE/NAME)")
    b.add_argument("--hours", type=float, default=None, help="telugu-synth only: hours of speech (default 2)")
    b.add_argument("--workers", type=int, default=2, help="parallel synthesis workers (default 2)")
    b.add_argument("--force", action="store_true", help="rebuild even when the cached set is current")
    b.add_argument(
        "--no-festival", action="store_true", help="leave out the festival voice even if installed"
    )
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=run_build)

    c = sub.add_parser(
        "check",
        help="validate what a run would read (manifest, set, CORPUS:PATH or folder); exit 1 if unusable",
    )
    c.add_argument(
        "target",
        help="anything --data takes (manifest.jsonl or a folder holding one, a built-in set, CORPUS:PATH such "
        "as fleurs:/data/fleurs/te_in), or a folder of audio files",
    )
    c.add_argument("--split", default=None, help="only this split (as run --split)")
    c.add_argument("--min-s", type=float, default=None, help="shortest usable clip in seconds (default 0.1)")
    c.add_argument("--max-s", type=float, default=None, help="longest usable clip in seconds (default 120)")
    c.add_argument("--all", action="store_true", help="list every file, not only those with problems")
    c.set_defaults(func=run_check)

    from .collect_cmd import add_collect_parser

    add_collect_parser(sub)


def run_list(args) -> int:
    from ..data import dataset_registry
    from ..datasets.build import MANIFEST, dataset_dir
    from ..datasets.identity import read_identity
    from ..datasets.telugu import BUILDERS

    reg = dataset_registry()
    width = max(len(n) for n in reg)
    print(f"{'dataset':<{width}}  status      description")
    for name in sorted(reg):
        desc = reg[name][1]
        if name in BUILDERS:
            built = (dataset_dir(name, args.cache) / MANIFEST).exists()
            status = "built" if built else "on demand"
            if built and (read_identity(dataset_dir(name, args.cache), name) or {}).get("degraded"):
                status = "DEGRADED"
        elif name == "synthetic-clips":
            status = "generated"
        else:
            status = "NAME:PATH"
        print(f"{name:<{width}}  {status:<10}  {desc}")
    return 0


def run_build(args) -> int:
    import json

    from ..datasets.build import BUILD_INFO
    from ..datasets.telugu import BUILDERS

    if args.name not in BUILDERS:
        print(f"error: cannot build {args.name!r}; buildable sets: {', '.join(BUILDERS)}", file=sys.stderr)
        return 2
    options = {"workers": args.workers, "progress": not args.quiet, "force": args.force}
    if args.hours is not None:
        if args.name != "telugu-synth":
            print("error: --hours applies to telugu-synth only", file=sys.stderr)
            return 2
        options["hours"] = args.hours
    if args.no_festival and args.name != "telugu-mini-cs":
        options["with_festival"] = False
    try:
        manifest = BUILDERS[args.name](args.cache, **options)
    except ModuleNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = json.loads((manifest.parent / BUILD_INFO).read_text(encoding="utf-8"))
    print(f"{args.name}: {manifest}")
    print(f"  {info['utterances']} utterances, {info['hours']:.3f} h, built in {info['build_seconds']} s")
    for split, s in info["splits"].items():
        print(
            f"  {split:<5} {s['utterances']:>6} utts  {s['hours']:.3f} h  {s['texts']} texts  {len(s['speakers'])} speakers"
        )
    if info["failed"]:
        print(f"  {len(info['failed'])} utterances could not be synthesised (listed in {BUILD_INFO})")
    identity = info.get("identity") or {}
    if identity:
        print(
            f"  identity: manifest sha256 {identity['manifest_sha256'][:16]}, voices {', '.join(identity['voices'])}"
        )
    if identity.get("degraded"):
        print(f"  DEGRADED: {identity['degraded_reason']}")
    return 0


def run_check(args) -> int:
    from pathlib import Path

    from ..datasets.check import check_target, guess_corpus, print_report

    limits = {k: v for k, v in (("min_s", args.min_s), ("max_s", args.max_s)) if v is not None}
    try:
        findings, n_files = check_target(args.target, split=args.split, **limits)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    code = print_report(findings, n_files, show_all=args.all)
    target = Path(args.target)
    corpus = guess_corpus(target) if not (target / "manifest.jsonl").exists() else None
    if corpus:
        print(
            f"note: only the audio files were checked. {target} looks like a {corpus} folder: a run reads it "
            f"through its transcripts (--data {corpus}:{target}); check it that way: "
            f"s2s-bench data check {corpus}:{target}"
        )
    return code
