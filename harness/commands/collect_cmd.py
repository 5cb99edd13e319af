"""``s2s-bench data collect``: the data collection pipeline (download, run, status); see docs/data.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_collect_parser(sub) -> None:
    p = sub.add_parser(
        "collect", help="collect clean clips and conversational pairs from media (a resumable pipeline)"
    )
    csub = p.add_subparsers(dest="collect_command", metavar="{run,download,status}")
    csub.required = True

    r = csub.add_parser("run", help="run (or resume) the pipeline into a collection folder")
    r.add_argument(
        "out", help="collection folder (created; holds collect.json, work/, manifest.jsonl, pairs/, card.md)"
    )
    r.add_argument(
        "sources", nargs="*", help="media files or folders, or hf:PATH (default: the folder's saved sources)"
    )
    r.add_argument("--workers", type=int, default=2, help="worker processes (default 2; 0 = in this process)")
    r.add_argument("--stage", help="run only this stage (its inputs must exist), e.g. --stage filter")
    r.add_argument("--until", help="stop after this stage")
    r.add_argument(
        "--force", action="append", default=[], metavar="STAGE", help="recompute STAGE even if current"
    )
    r.add_argument(
        "--asr", help="transcribe clips with this ASR judge, e.g. whisper:path=/models/whisper-small"
    )
    r.add_argument(
        "--pyannote", metavar="PATH", help="speaker turns from a local pyannote.audio pipeline folder"
    )
    r.add_argument("--dnsmos", choices=["p835", "p808", "off"], help="DNSMOS model for the quality filter")
    r.add_argument(
        "--min-dnsmos", type=float, help="minimum DNSMOS (OVRL for p835) to keep a clip (0 = no filter)"
    )
    r.add_argument("--min-snr-db", type=float, help="minimum estimated SNR in dB")
    r.add_argument("--min-s", type=float, help="shortest clip kept, seconds")
    r.add_argument(
        "--max-gap-s", type=float, help="longest gap between a turn and its reply in a pair, seconds"
    )
    r.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="any parameter of collect.json, e.g. --set vad.threshold=0.6")  # fmt: skip
    r.add_argument("--no-parquet", action="store_true", help="skip the datasets parquet export")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=run_collect)

    d = csub.add_parser(
        "download", help="download a URL list with yt-dlp (resumable; records title/channel/licence)"
    )
    d.add_argument("urls", help="text file with one URL a line")
    d.add_argument("--out", required=True, help="download folder (then a source for `data collect run`)")
    d.add_argument(
        "--allow-file-urls", action="store_true", help="accept file:// URLs (yt-dlp --enable-file-urls)"
    )
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=run_download)

    s = csub.add_parser("status", help="stages done, hours in and out, errors of a collection folder")
    s.add_argument("out")
    s.set_defaults(func=run_status)


def _apply_options(cfg, args) -> None:
    if args.sources:
        cfg.sources = [
            s if s.startswith("hf:") else str(Path(s).expanduser().resolve()) for s in args.sources
        ]
    if args.asr:
        cfg.transcribe["asr"] = args.asr
    if args.pyannote:
        cfg.speakers.update(method="pyannote", pyannote_path=str(Path(args.pyannote).expanduser().resolve()))
    for value, section, key in ((args.dnsmos, "quality", "dnsmos"), (args.min_dnsmos, "filter", "min_dnsmos"),
                                (args.min_snr_db, "filter", "min_snr_db"), (args.min_s, "filter", "min_duration_s"),
                                (args.max_gap_s, "pairs", "max_gap_s")):  # fmt: skip
        if value is not None:
            getattr(cfg, section)[key] = value
    if args.no_parquet:
        cfg.export["parquet"] = False
    for item in args.set:
        name, sep, raw = item.partition("=")
        section, dot, key = name.partition(".")
        target = getattr(cfg, section, None)
        if not sep or not dot or not isinstance(target, dict) or key not in target:
            raise ValueError(f"--set {item!r}: expected SECTION.KEY=VALUE with a key of collect.json")
        try:
            target[key] = json.loads(raw)
        except json.JSONDecodeError:
            target[key] = raw


def run_collect(args) -> int:
    from ..datasets.collect.stages import CONFIG, STAGE_NAMES, CollectConfig, run_collection

    out = Path(args.out)
    cfg = CollectConfig.load(out) if (out / CONFIG).exists() else CollectConfig()
    try:
        _apply_options(cfg, args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not cfg.sources:
        print(f"error: no sources given and {out / CONFIG} does not exist: name media files, folders or hf:PATH",
              file=sys.stderr)  # fmt: skip
        return 2
    for name in (args.stage, args.until, *args.force):
        if name and name not in STAGE_NAMES:
            print(f"error: unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)}", file=sys.stderr)
            return 2
    if cfg.transcribe.get("asr"):
        from ..datasets.collect.transcribe import check_judge
        from ..metrics.judges import JudgeError

        try:
            check_judge(cfg.transcribe["asr"])
        except (JudgeError, ValueError) as exc:
            print(f"error: transcribe stage: {exc}", file=sys.stderr)
            print("  (drop --asr to collect without transcripts)", file=sys.stderr)
            return 2
    try:
        results = run_collection(out, cfg, workers=args.workers, progress=not args.quiet, only=args.stage,
                                 until=args.until, force=tuple(args.force))  # fmt: skip
    except (FileNotFoundError, ModuleNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "export" in results:
        print(
            f"clips: {out / 'manifest.jsonl'}  pairs: {out / 'pairs' / 'manifest.jsonl'}  card: {out / 'card.md'}"
        )
    failed = sum(len(r.info.get("errors", [])) for r in results.values())
    if failed:
        print(f"{failed} sources/units were skipped (listed above and in card.md)")
    return 0


def run_download(args) -> int:
    from ..datasets.collect.download import download, read_urls

    try:
        urls = read_urls(args.urls)
        counts = download(urls, args.out, allow_file_urls=args.allow_file_urls, progress=not args.quiet)
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{counts['ok']} downloaded, {counts['skipped']} already there, {counts['failed']} failed -> {args.out}"
    )
    return 1 if counts["failed"] else 0


def run_status(args) -> int:
    from ..datasets.collect.stages import stage_infos

    infos = stage_infos(Path(args.out))
    if not infos:
        print(f"error: {args.out} holds no collection (no work/*/stage.json)", file=sys.stderr)
        return 2
    print(f"{'stage':<10} {'in':>7} {'out':>7} {'hours in':>9} {'hours out':>9} {'wall s':>8} errors")
    for i in infos:
        h_in = "-" if i.get("hours_in") is None else f"{i['hours_in']:.3f}"
        h_out = "-" if i.get("hours_out") is None else f"{i['hours_out']:.3f}"
        print(f"{i['stage']:<10} {i['records_in']:>7} {i['records_out']:>7} {h_in:>9} {h_out:>9} {i['wall_s']:>8} "
              f"{len(i.get('errors', []))}")  # fmt: skip
    return 0
