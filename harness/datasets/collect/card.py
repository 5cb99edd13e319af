"""The data card: ``card.md`` (for people) and ``card.json`` (for tools) in the collection folder.

Hours in and out of every stage and every filter (with its threshold), duplicates removed, pairs and their gaps,
splits, sources by kind and licence, and every source or unit that failed with its reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .manifest import read_jsonl


def _h(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def card_data(root: Path, cfg) -> dict[str, Any]:
    from .stages import stage_infos

    infos = stage_infos(root)
    clips = read_jsonl(root / "manifest.jsonl") if (root / "manifest.jsonl").exists() else []
    pairs = (
        read_jsonl(root / "pairs" / "manifest.jsonl") if (root / "pairs" / "manifest.jsonl").exists() else []
    )
    splits: dict[str, dict] = {}
    for c in clips:
        s = splits.setdefault(c.get("split", "?"), {"clips": 0, "hours": 0.0, "pairs": 0})
        s["clips"] += 1
        s["hours"] += c["duration"] / 3600
    for p in pairs:
        splits.setdefault(p.get("split", "?"), {"clips": 0, "hours": 0.0, "pairs": 0})["pairs"] += 1
    return {
        "language": cfg.language,
        "stages": [
            {
                k: i.get(k)
                for k in (
                    "stage",
                    "description",
                    "records_in",
                    "records_out",
                    "hours_in",
                    "hours_out",
                    "wall_s",
                    "cpu_s",
                    "units",
                    "units_reused",
                )
            }
            | {"errors": len(i.get("errors", []))}
            for i in infos
        ],  # fmt: skip
        "filters": next((i.get("filters") for i in infos if i["stage"] == "filter"), {}),
        "thresholds": cfg.params("filter"),
        "duplicates": next((i.get("duplicates") for i in infos if i["stage"] == "dedup"), {}),
        "pairs": next(
            ({"pairs": i.get("pairs"), "gap_s": i.get("gap_s")} for i in infos if i["stage"] == "pairs"), {}
        ),
        "transcripts": cfg.transcribe.get("asr") or None,
        "splits": {k: {**v, "hours": round(v["hours"], 4)} for k, v in sorted(splits.items())},
        "sources": next(
            (
                {"kinds": i.get("kinds"), "licenses": i.get("licenses")}
                for i in infos
                if i["stage"] == "ingest"
            ),
            {},
        ),
        "failures": [{"stage": i["stage"], **e} for i in infos for e in i.get("errors", [])],
        "config": {k: v for k, v in vars(cfg).items() if k != "sources"},
        "n_sources": len(cfg.sources),
    }


def write_card(root: Path, cfg) -> Path:
    d = card_data(root, cfg)
    (root / "card.json").write_text(json.dumps(d, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    lines = [f"# Data card: {root.name}", "",
             f"Language: `{d['language']}` (declared, not detected). Transcripts: "
             f"{d['transcripts'] or 'none (no --asr)'}. Sources: {d['n_sources']} given; by kind {d['sources'].get('kinds')};"
             f" licences {d['sources'].get('licenses')}.", "",
             "## Stages", "", "| stage | what | in | out | hours in | hours out | wall s | errors |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for s in d["stages"]:
        lines.append(f"| {s['stage']} | {s['description']} | {s['records_in']} | {s['records_out']} | {_h(s['hours_in'])} "
                     f"| {_h(s['hours_out'])} | {s['wall_s']} | {s['errors']} |")  # fmt: skip
    lines += ["", "## Filters", "", "| filter | threshold | clips failing | hours failing | hours removed first |",
              "|---|---|---:|---:|---:|"]  # fmt: skip
    th = d["thresholds"]
    names = {"too_short": f"duration >= {th['min_duration_s']} s", "too_long": f"duration <= {th['max_duration_s']} s",
             "low_snr": f"SNR >= {th['min_snr_db']} dB", "clipping": f"clipped <= {th['max_clipped_fraction']}",
             "low_dnsmos": f"DNSMOS {th['dnsmos_model']} >= {th['min_dnsmos']}",
             "no_dnsmos": "DNSMOS could be measured"}  # fmt: skip
    for name, rule in names.items():
        f = d["filters"].get(name, {"clips": 0, "hours": 0.0, "first_hours": 0.0})
        lines.append(f"| {name} | {rule} | {f['clips']} | {f['hours']:.3f} | {f['first_hours']:.3f} |")
    dup = d["duplicates"] or {}
    pr = d["pairs"] or {}
    lines += ["", f"Duplicates removed: {dup.get('clips', 0)} clips, {dup.get('hours', 0.0):.3f} h.",
              f"Pairs: {pr.get('pairs', 0)} (gap p10/p50/p90 s: {pr.get('gap_s')}).", "", "## Splits", "",
              "| split | clips | hours | pairs |", "|---|---:|---:|---:|"]  # fmt: skip
    for k, v in d["splits"].items():
        lines.append(f"| {k} | {v['clips']} | {v['hours']:.3f} | {v['pairs']} |")
    if d["failures"]:
        lines += ["", "## Skipped sources and units", ""]
        lines += [f"- {f['stage']}: `{f['unit']}`: {f['error'].splitlines()[0]}" for f in d["failures"]]
    path = root / "card.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
