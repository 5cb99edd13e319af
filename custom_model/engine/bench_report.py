"""Markdown tables from the engine micro-benchmarks' pytest-benchmark JSON (``benchmarks/test_engine_tick.py``).

    python -m custom_model.engine.bench_report reports/engine/tick-bench.json > reports/engine/tick-bench.md

Per variant and batch size: the median tick in ms, the ms per session, and the ratio to the per-session path at
batch 1 (measured in the same run); ticks through the engine with and without its decode thread; then the share of
Python throughput another thread keeps during ticks.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def tables(data: dict) -> str:
    ticks: dict[tuple[str, int], float] = {}
    engine_ticks: dict[tuple[bool, int], float] = {}
    gil: dict[str, float] = {}
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if "python_share" in info:
            gil[info["variant"]] = info["python_share"]
        elif info.get("path") == "engine":
            engine_ticks[(bool(info["decode_thread"]), int(info["batch"]))] = bench["stats"]["median"] * 1e3
        elif "batch" in info:
            ticks[(info["variant"], int(info["batch"]))] = bench["stats"]["median"] * 1e3
    batches = sorted({b for _, b in ticks})
    variants = list(dict.fromkeys(v for v, _ in ticks))
    base = ticks.get(("per-session", 1))
    machine = data.get("machine_info", {})
    lines = [
        f"CPU: {machine.get('cpu', {}).get('brand_raw', machine.get('processor', '?'))}, "
        f"{machine.get('cpu', {}).get('count', '?')} logical cores; Python {machine.get('python_version', '?')}; "
        f"run {data.get('datetime', '?')}.",
        "",
        "| variant | "
        + " | ".join(f"batch {b}: tick ms (ms/session)" for b in batches)
        + " | batch 1 vs per-session |",
        "|---|" + "---|" * (len(batches) + 1),
    ]
    for v in variants:
        cells = []
        for b in batches:
            t = ticks.get((v, b))
            cells.append("n/a" if t is None else f"{t:.2f} ({t / b:.2f})")
        t1 = ticks.get((v, 1))
        if v == "per-session":
            ratio = "reference"
        elif base and t1:
            ratio = f"{base / t1:.1f}x faster" if t1 <= base else f"{t1 / base:.1f}x slower"
        else:
            ratio = "n/a"
        lines.append(f"| `{v}` | " + " | ".join(cells) + f" | {ratio} |")
    if engine_ticks:
        sizes = sorted({b for _, b in engine_ticks})
        lines += [
            "",
            "Ticks through `Engine.tick`, every session answering (`onnxruntime`):",
            "",
            "| decode | " + " | ".join(f"{b} answering: tick ms" for b in sizes) + " |",
            "|---|" + "---|" * len(sizes),
        ]
        for threaded in sorted({d for d, _ in engine_ticks}):
            cells = [engine_ticks.get((threaded, b)) for b in sizes]
            name = "in a second thread (`decode_thread`)" if threaded else "in the engine's thread"
            lines.append(
                f"| {name} | " + " | ".join("n/a" if c is None else f"{c:.2f}" for c in cells) + " |"
            )
    if gil:
        lines += ["", "| variant | Python throughput left to another thread during ticks |", "|---|---|"]
        lines += [f"| `{v}` | {share:.2f} |" for v, share in gil.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="pytest-benchmark JSON (--benchmark-json)")
    args = parser.parse_args(argv)
    print(tables(json.loads(args.json.read_text())), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
