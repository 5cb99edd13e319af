"""The pipeline's stages in order, their parameters, and the run over a collection folder.

``ingest -> decode -> loudness -> vad -> speakers -> turns -> quality -> filter -> dedup -> transcribe -> pairs ->
export``. Each stage's manifest lands in ``work/NN-name/manifest.jsonl``; the config (sources and every parameter) is
``collect.json`` in the collection folder, so ``s2s-bench data collect run OUT`` reruns with what was used before and
a changed parameter reruns only the stages (and units) it touches.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import dedup, export, media, quality, speakers, transcribe, turns, vad
from .manifest import Record, hours, write_jsonl
from .pipeline import Stage, StageResult, run_stage, worker_pool

CONFIG = "collect.json"


@dataclass
class CollectConfig:
    """Every parameter of a collection (sections by stage); saved to ``collect.json``."""

    sources: list[str] = field(default_factory=list)
    language: str = "te"
    splits: dict = field(default_factory=lambda: {"dev_pct": 5, "test_pct": 5})
    loudness: dict = field(default_factory=lambda: {"target_lufs": -23.0, "max_peak_dbfs": -1.0})
    vad: dict = field(default_factory=lambda: vad.VadConfig().to_dict())
    speakers: dict = field(default_factory=lambda: {
        "method": "resemblyzer", "max_distance": 0.3, "min_embed_s": 1.0, "partials_per_s": 1.0,
        "max_neighbour_gap_s": 0.3, "pyannote_path": None})  # fmt: skip
    turns: dict = field(default_factory=lambda: {"max_turn_pause_s": 1.5, "max_clip_s": 30.0})
    quality: dict = field(default_factory=lambda: {"dnsmos": "p835"})
    filter: dict = field(default_factory=lambda: {
        "min_duration_s": 1.0, "max_duration_s": 30.0, "min_snr_db": 10.0, "max_clipped_fraction": 0.001,
        "min_dnsmos": 2.0})  # fmt: skip
    dedup: dict = field(default_factory=lambda: {
        "lsh_threshold": 0.2, "num_perm": 64, "near_match": 0.2, "max_duration_ratio": 1.25, "min_landmarks": 20})  # fmt: skip
    transcribe: dict = field(default_factory=lambda: {"asr": None})
    pairs: dict = field(default_factory=lambda: {"min_gap_s": 0.0, "max_gap_s": 2.0, "max_turn_s": 30.0})
    export: dict = field(default_factory=lambda: {"pad_s": 0.1, "parquet": True})

    @classmethod
    def load(cls, root: Path) -> CollectConfig:
        data = json.loads((root / CONFIG).read_text(encoding="utf-8"))
        cfg = cls()
        for k, v in data.items():
            if isinstance(getattr(cfg, k, None), dict):
                getattr(cfg, k).update(v)
            elif hasattr(cfg, k):
                setattr(cfg, k, v)
        return cfg

    def save(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / CONFIG).write_text(
            json.dumps(asdict(self), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )

    def params(self, stage: str) -> dict:
        """The parameters a stage's cache key covers."""
        if stage == "filter":
            return {**self.filter, "dnsmos_model": self.quality["dnsmos"]}
        if stage == "export":
            return {**self.export, "language": self.language}
        return dict(getattr(self, stage, {}) or {})


STAGES: tuple[Stage, ...] = (
    Stage("decode", ("ingest",), media.process_decode, description="PyAV decode to 16 kHz mono WAV"),
    Stage("loudness", ("decode",), media.process_loudness, description="EBU R128 loudness (pyloudnorm), gain recorded"),
    Stage("vad", ("loudness",), vad.process_vad, description="silero-vad speech segments, <= 30 s, cut at pauses"),
    Stage("speakers", ("vad", "loudness"), speakers.process_speakers, description="speaker labels per recording"),
    Stage("turns", ("speakers",), turns.process_turns, parallel=False, description="speaker turns as clips"),
    Stage("quality", ("turns", "loudness"), quality.process_quality, description="SNR, clipping, DNSMOS per clip"),
    Stage("filter", ("quality",), quality.process_filter, parallel=False, summarize=quality.summarize_filter,
          description="quality thresholds"),
    Stage("dedup", ("filter", "loudness"), dedup.process_fingerprints, reduce=dedup.reduce_duplicates,
          summarize=dedup.summarize_duplicates, description="exact and near duplicate removal"),
    Stage("transcribe", ("dedup", "loudness"), transcribe.process_transcribe, description="optional ASR transcripts"),
    Stage("pairs", ("turns", "transcribe"), turns.process_pairs, parallel=False, summarize=turns.summarize_pairs,
          description="(turn, reply) pairs of different speakers within the gap"),
    Stage("export", ("transcribe", "pairs", "loudness"), export.process_export, reduce=export.reduce_export,
          description="clips, pairs, manifests"),
)  # fmt: skip
STAGE_NAMES = ("ingest", *(s.name for s in STAGES))


def stage_dir(root: Path, name: str) -> Path:
    return root / "work" / f"{STAGE_NAMES.index(name):02d}-{name}"


def run_ingest(cfg: CollectConfig, root: Path) -> StageResult:
    from .sources import collect_sources, source_summary

    t0 = time.perf_counter()
    records, problems = collect_sources(cfg.sources, root / "work", **cfg.splits)
    info = {"stage": "ingest", "description": "sources to recordings", "params": {"sources": cfg.sources, **cfg.splits},
            "records_in": len(cfg.sources), "records_out": len(records), "hours_in": None, "hours_out": None,
            "wall_s": round(time.perf_counter() - t0, 3), "errors": [{"unit": p["source"], "error": p["error"]} for p in problems],
            **source_summary(records)}  # fmt: skip
    d = stage_dir(root, "ingest")
    write_jsonl(d / "manifest.jsonl", records)
    (d / "stage.json").write_text(json.dumps(info, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return StageResult("ingest", records, info)


def run_collection(
    root: str | Path,
    cfg: CollectConfig,
    *,
    workers: int = 2,
    progress: bool = True,
    only: str | None = None,
    until: str | None = None,
    force: tuple[str, ...] = (),
    log=print,
) -> dict[str, StageResult]:
    """Run the stages (all, up to ``until``, or ``only`` one, whose inputs must exist), reusing what is current."""
    root = Path(root)
    cfg.save(root)
    results: dict[str, StageResult] = {}
    if only not in (None, "ingest"):
        from .manifest import read_jsonl

        stage = next(s for s in STAGES if s.name == only)
        for name in stage.inputs:
            path = stage_dir(root, name) / "manifest.jsonl"
            if not path.exists():
                raise FileNotFoundError(
                    f"stage {only!r} needs {name!r} first: {path} is missing (run without --stage)"
                )
            results[name] = StageResult(name, read_jsonl(path))
        todo: tuple[Stage, ...] = (stage,)
    else:
        results["ingest"] = run_ingest(cfg, root)
        _log_stage(results["ingest"], log)
        if only == "ingest":
            return results
        last = STAGE_NAMES.index(until) if until else len(STAGE_NAMES)
        todo = tuple(s for s in STAGES if STAGE_NAMES.index(s.name) <= last)
    pool = worker_pool(workers)
    try:
        for stage in todo:
            inputs = {name: results[name].records for name in stage.inputs}
            res = run_stage(stage, inputs, cfg.params(stage.name), root, stage_dir(root, stage.name),
                            pool=pool, progress=progress, force=stage.name in force)  # fmt: skip
            results[stage.name] = res
            _log_stage(res, log)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if (
        "export" in results
        and not results["export"].skipped
        or ("export" in results and not (root / "card.md").exists())
    ):
        from .card import write_card

        if cfg.export.get("parquet", True):
            export.write_parquet(root)
        write_card(root, cfg)
    return results


def _log_stage(res: StageResult, log) -> None:
    i = res.info
    state = "up to date" if res.skipped else f"{i.get('wall_s', 0):.1f} s"
    h_in = "" if i.get("hours_in") is None else f"{i['hours_in']:.3f} h -> "
    h_out = "" if i.get("hours_out") is None else f"{i['hours_out']:.3f} h"
    log(
        f"{res.name:<10} {i.get('records_in', '?'):>6} -> {i.get('records_out', '?'):<6} {h_in}{h_out}  ({state})"
    )
    for err in i.get("errors", []) if not res.skipped else []:
        log(f"  skipped {err['unit']}: {err['error']}")


def stage_infos(root: Path) -> list[dict[str, Any]]:
    out = []
    for name in STAGE_NAMES:
        p = stage_dir(root, name) / "stage.json"
        if p.exists():
            out.append(json.loads(p.read_text(encoding="utf-8")))
    return out


__all__ = ["CollectConfig", "STAGES", "STAGE_NAMES", "run_collection", "stage_infos", "hours", "Record"]
