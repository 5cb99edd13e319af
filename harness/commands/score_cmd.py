"""``s2s-bench score``: score text files, audio folders or a run folder with the registered metrics."""

from __future__ import annotations

import json
import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "score", help="WER/CER/chrF of text files, PESQ/STOI/DNSMOS of audio folders, or a run"
    )
    sub = p.add_subparsers(dest="score_what", metavar="WHAT")

    t = sub.add_parser("text", help="Telugu-safe WER, CER and chrF of hypothesis vs reference lines")
    t.add_argument("--ref", required=True, help="reference text file, one utterance a line (UTF-8)")
    t.add_argument("--hyp", required=True, help="hypothesis text file, the same number of lines")
    t.add_argument("--per-utt", action="store_true", help="also print each line's scores")
    t.add_argument("--json", action="store_true", help="print JSON instead of a table")
    t.set_defaults(func=run_text)

    a = sub.add_parser("audio", help="score audio files in --hyp against same-named files in --ref")
    a.add_argument("--hyp", required=True, help="folder of audio files to score (wav/flac/ogg)")
    a.add_argument("--ref", help="folder of reference files with the same names (needed by pesq, stoi, ...)")
    a.add_argument(
        "--metrics",
        default="pesq,stoi,estoi,si_sdr,log_mel_distance,dnsmos",
        help="comma-separated metric names or groups (default: %(default)s; 'all' for every one)",
    )
    a.add_argument("--workers", type=int, default=2, help="processes (default 2; 1 = this process)")
    a.add_argument("--out", help="also write per-file results to this JSONL file")
    a.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a.set_defaults(func=run_audio)

    r = sub.add_parser("run", help="score a run folder: writes scores.jsonl and metrics into run.json")
    r.add_argument("run_dir", help="run folder (with run.json)")
    r.add_argument("--metrics", default="all", help="comma-separated metric names or groups (default: all)")
    r.add_argument(
        "--asr-judge",
        default=None,
        metavar="SPEC",
        help="ASR judge for WER/CER/chrF, e.g. whisper:path=/models/whisper-small",
    )
    r.add_argument(
        "--target",
        default="input",
        choices=("input", "response"),
        help="compare outputs with the utterance's input (default) or the data's reference response",
    )
    r.add_argument("--workers", type=int, default=2, help="processes (default 2; 1 = this process)")
    r.add_argument("--json", action="store_true", help="print JSON instead of a table")
    from .run_cmd import add_distribution_arguments

    add_distribution_arguments(r)
    r.set_defaults(func=run_run)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().splitlines()
    except UnicodeDecodeError as exc:
        raise SystemExit(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise SystemExit(f"{path}: {exc.strerror}") from None


def _fmt(agg: dict) -> str:
    if agg.get("value") is None:
        return agg.get("reason", "n/a")
    ci = agg.get("ci95")
    ci_txt = f"  [95% CI {ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
    arrow = "higher is better" if agg["higher_is_better"] else "lower is better"
    na = f", {agg['n_na']} n/a" if agg.get("n_na") else ""
    return f"{agg['value']:.4g} {agg['unit']}{ci_txt}  (n={agg['n']}{na}; {arrow})"


def run_text(args) -> int:
    from ..metrics import Sample, aggregate, get_metrics

    refs, hyps = _read_lines(args.ref), _read_lines(args.hyp)
    if len(refs) != len(hyps):
        print(
            f"error: {args.ref} has {len(refs)} lines but {args.hyp} has {len(hyps)}; one utterance a line",
            file=sys.stderr,
        )
        return 2
    metrics = get_metrics("wer,cer,cer_codepoint,chrf")
    samples = [
        Sample(f"line {i}", ref_text=r, transcript=h)
        for i, (r, h) in enumerate(zip(refs, hyps, strict=True), 1)
    ]
    per = [{m.name: m.compute(s) for m in metrics} for s in samples]
    corpus = {m.name: aggregate(m, [p[m.name] for p in per]) for m in metrics}
    counts = {
        k: sum((p["wer"].detail or {}).get(k, 0) for p in per) for k in ("sub", "del", "ins", "ref_len")
    }
    ccounts = {
        k: sum((p["cer"].detail or {}).get(k, 0) for p in per) for k in ("sub", "del", "ins", "ref_len")
    }
    if args.json:
        out = {"corpus": corpus, "word_counts": counts, "grapheme_counts": ccounts}
        if args.per_utt:
            out["utterances"] = [{k: v.to_record() for k, v in p.items()} for p in per]
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    print(
        f"{len(samples)} utterances (Telugu-safe normalisation; CER over grapheme clusters unless labelled)"
    )
    labels = {
        "wer": "WER",
        "cer": "CER (grapheme clusters)",
        "cer_codepoint": "CER (code points)",
        "chrf": "chrF",
    }
    for name, agg in corpus.items():
        print(f"  {labels[name]:<24} {_fmt(agg)}")
    print(
        f"  words: {counts['ref_len']} reference, {counts['sub']} substitutions, {counts['del']} deletions, "
        f"{counts['ins']} insertions"
    )
    print(
        f"  grapheme clusters: {ccounts['ref_len']} reference, {ccounts['sub']} substitutions, "
        f"{ccounts['del']} deletions, {ccounts['ins']} insertions"
    )
    if args.per_utt:
        for s, p in zip(samples, per, strict=True):
            vals = "  ".join(
                f"{k}={'n/a' if r.value is None else format(r.value, '.4g')}" for k, r in p.items()
            )
            print(f"  {s.id}: {vals}")
    return 0


AUDIO_EXT = (".wav", ".flac", ".ogg")


def run_audio(args) -> int:
    from pathlib import Path

    from ..audio import read_audio
    from ..metrics import MetricResult, Sample, aggregate, get_metrics
    from ..metrics.scoring import score_samples

    try:
        metrics = get_metrics(args.metrics)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    hyp_dir = Path(args.hyp)
    if not hyp_dir.is_dir():
        print(f"error: --hyp {hyp_dir} is not a folder", file=sys.stderr)
        return 2
    ref_dir = Path(args.ref) if args.ref else None
    files = sorted(f for f in hyp_dir.iterdir() if f.suffix.lower() in AUDIO_EXT)
    if not files:
        print(f"error: no {'/'.join(AUDIO_EXT)} files in {hyp_dir}", file=sys.stderr)
        return 2
    samples, bad = [], {}
    for f in files:
        s = Sample(f.stem)
        try:
            s.audio, s.sr = read_audio(f)
        except Exception as exc:  # the file is reported and skipped; the others are still scored
            bad[f.stem] = f"n/a: {exc}"
            continue
        if ref_dir is not None:
            ref = next((ref_dir / (f.stem + e) for e in AUDIO_EXT if (ref_dir / (f.stem + e)).exists()), None)
            if ref is not None:
                try:
                    s.ref_audio, s.ref_sr = read_audio(ref)
                except Exception as exc:
                    print(f"warning: {exc}", file=sys.stderr)
        samples.append(s)
    results = score_samples(samples, metrics, workers=args.workers)
    per = {s.id: r for s, r in zip(samples, results, strict=True)}
    per.update({stem: {m.name: MetricResult.na(reason) for m in metrics} for stem, reason in bad.items()})
    corpus = {m.name: aggregate(m, [per[k][m.name] for k in per]) for m in metrics}
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            for stem, res in per.items():
                for name, r in res.items():
                    fh.write(
                        json.dumps({"file": stem, "metric": name, **r.to_record()}, ensure_ascii=False) + "\n"
                    )
    if args.json:
        print(json.dumps({"corpus": corpus}, indent=2))
        return 0
    print(f"{len(per)} files in {hyp_dir}" + (f" vs {ref_dir}" if ref_dir else ""))
    for name, agg in corpus.items():
        print(f"  {name:<18} {_fmt(agg)}")
    for stem, reason in bad.items():
        print(f"  skipped {stem}: {reason}")
    return 0


def run_run(args) -> int:
    from ..metrics import score_run
    from ..metrics.judges import JudgeError
    from ..run_folder import RunError
    from .run_cmd import ray_options

    try:
        on_ray = ray_options(args)
        if on_ray is not None:
            from ..executors.ray_executor import score_on_ray

            summaries = score_on_ray(
                args.run_dir, args.metrics, args.asr_judge, args.target, args.workers, on_ray
            )
        else:
            summaries = score_run(
                args.run_dir,
                metrics=args.metrics,
                judge=args.asr_judge,
                target=args.target,
                workers=args.workers,
                progress=not args.json,
            )
    except (FileNotFoundError, ValueError, JudgeError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summaries, indent=2, ensure_ascii=False))
        return 0
    for key, aggs in summaries.items():
        print(key)
        for name, agg in aggs.items():
            print(f"  {name:<18} {_fmt(agg)}")
    print(f"wrote {args.run_dir}/scores.jsonl and metrics in run.json")
    return 0
