"""Benchmark the data collection pipeline on synthetic interviews with planted turns (the goal figures).

    python scripts/bench_collect.py --interviews 24 --out reports/runs/collect-bench

Writes the interviews (mp4 / mp3 / webm, SNR 15-30 dB, a music bed, a music-only intro in every third), runs
``s2s-bench data collect run`` on them with 2 workers from scratch (DNSMOS P.835), then reruns the quality stage and
what follows with ``--dnsmos p808``, and scores segment boundaries, turns and pairs against the planted truth.
Prints a Markdown summary and writes ``bench.json`` into the output folder. Synthetic speech: for the pipeline's
mechanics, not for accuracy on real speakers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")
        )
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def main() -> int:
    from harness.datasets.collect.evaluate import score_collection
    from harness.datasets.collect.interviews import InterviewStyle, interview_set
    from harness.datasets.collect.stages import stage_infos

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--interviews", type=int, default=24)
    p.add_argument("--pairs-per-interview", type=int, default=5)
    p.add_argument("--out", default="reports/runs/collect-bench")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--min-dnsmos", type=float, default=1.5, help="espeak-ng speech scores ~2.2 OVRL even when clean"
    )
    args = p.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    src = out / "sources"
    t0 = time.perf_counter()

    def style_of(k: int) -> InterviewStyle:
        return InterviewStyle(snr_db=15.0 + (k * 5) % 20, music_db=-30.0 - (k % 3) * 4,
                              intro_music_s=2.0 if k % 3 == 0 else 0.0)  # fmt: skip

    made = interview_set(src, args.interviews, args.pairs_per_interview, seed=7, style_of=style_of)
    n_made = len(made)
    gen_s = time.perf_counter() - t0
    col = out / "collection"
    load_before = os.getloadavg()
    cmd = [sys.executable, "-m", "harness.cli", "data", "collect", "run", str(col), str(src), "--workers",
           str(args.workers), "--min-dnsmos", str(args.min_dnsmos), "--quiet"]  # fmt: skip
    t1 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    run_s = time.perf_counter() - t1
    infos_p835 = {i["stage"]: i for i in stage_infos(col)}
    score = score_collection(col)
    subprocess.run(cmd[:-3] + ["--dnsmos", "p808", "--min-dnsmos", "2.0", "--quiet"], check=True, cwd=ROOT)
    infos_p808 = {i["stage"]: i for i in stage_infos(col)}
    load_after = os.getloadavg()
    audio_s = infos_p835["decode"]["hours_out"] * 3600
    stages = {}
    for name, info in infos_p835.items():
        if name == "ingest":
            continue
        stages[name] = {"wall_s": info["wall_s"], "cpu_s": info.get("cpu_s"),
                        "x_realtime": round(audio_s / info["wall_s"], 1) if info["wall_s"] else None}  # fmt: skip
    stages["quality (p808)"] = {"wall_s": infos_p808["quality"]["wall_s"], "cpu_s": infos_p808["quality"].get("cpu_s"),
                                "x_realtime": round(audio_s / infos_p808["quality"]["wall_s"], 1)}  # fmt: skip
    non_asr = [n for n in stages if n not in ("transcribe", "quality (p808)")]
    wall_p835 = sum(stages[n]["wall_s"] for n in non_asr)
    wall_p808 = wall_p835 - stages["quality"]["wall_s"] + stages["quality (p808)"]["wall_s"]
    wall_no_dnsmos = wall_p835 - stages["quality"]["wall_s"]
    result = {
        "command": " ".join(["python", "scripts/bench_collect.py", "--interviews", str(args.interviews), "--out", str(out)]),
        "cpu": cpu_name(), "cores": os.cpu_count(), "workers": args.workers,
        "load_average_before": [round(v, 2) for v in load_before], "load_average_after": [round(v, 2) for v in load_after],
        "interviews": n_made, "audio_s": round(audio_s, 1), "generate_s": round(gen_s, 1), "pipeline_run_s": round(run_s, 1),
        "stages": stages,
        "x_realtime_all_non_asr_stages": {"dnsmos_p835": round(audio_s / wall_p835, 1),
                                          "dnsmos_p808": round(audio_s / wall_p808, 1),
                                          "without_dnsmos": round(audio_s / wall_no_dnsmos, 1)},
        "score": {k: v for k, v in score.items() if k != "per_recording"},
    }  # fmt: skip
    (out / "bench.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    s = result["score"]
    print(f"# Collection benchmark: {n_made} interviews, {audio_s / 60:.1f} min of audio")
    print(f"CPU {result['cpu']} ({result['cores']} cores), {args.workers} workers, load average "
          f"{result['load_average_before'][0]} before / {result['load_average_after'][0]} after")  # fmt: skip
    print(f"- segment boundaries within 100 ms: recall {s['boundaries']['recall']}, precision {s['boundaries']['precision']}"
          f" ({s['boundaries']['planted']} planted)")  # fmt: skip
    print(
        f"- turn boundaries within 100 ms: recall {s['turns']['recall']}, precision {s['turns']['precision']}"
    )
    print(f"- pairs: precision {s['pairs']['precision']}, recall {s['pairs']['recall']} ({s['pairs']['planted']} planted,"
          f" {s['pairs']['mined']} mined)")  # fmt: skip
    print("\n| stage | wall s | x real time |\n|---|---:|---:|")
    for name, st in stages.items():
        print(f"| {name} | {st['wall_s']} | {st['x_realtime']} |")
    x = result["x_realtime_all_non_asr_stages"]
    print(f"\nall non-ASR stages: {x['dnsmos_p835']}x real time with DNSMOS P.835, {x['dnsmos_p808']}x with P.808 only, "
          f"{x['without_dnsmos']}x without DNSMOS")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
