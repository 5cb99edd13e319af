"""Score many samples (in a process pool) and score whole run folders (``scores.jsonl`` + run.json summaries)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .core import NEEDS_TRANSCRIPT, Metric, MetricResult, Sample, aggregate

LATENCY_ONLY = "random weights: latency only"
TARGETS = ("input", "response")

# ---------------------------------------------------------------- process pool


_worker_metrics: list[Metric] | None = None


def _warm_sample() -> Sample:
    """A 1.2 s two-tone clip and a slightly noisy copy: enough to make every model and JIT path run once."""
    t = np.arange(int(1.2 * 16000)) / 16000
    x = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    y = (x + 0.01 * np.random.default_rng(0).standard_normal(x.size)).astype(np.float32)
    return Sample("warm-up", audio=y, sr=16000, ref_audio=x, ref_sr=16000)


def _init_worker(names: Sequence[str], threads: int = 1) -> None:
    """Pool initializer: resolve metrics and pay model loading and librosa/numba first-call costs once."""
    global _worker_metrics
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        import torch

        torch.set_num_threads(threads)
    except ModuleNotFoundError:
        pass
    from . import get_metrics

    _worker_metrics = get_metrics(list(names))
    warm = _warm_sample()
    for m in _worker_metrics:
        m.compute(warm)  # n/a results are fine here: the real samples will report them


def _score_in_worker(sample: Sample) -> dict[str, MetricResult]:
    assert _worker_metrics is not None, "worker not initialised"
    return {m.name: m.compute(sample) for m in _worker_metrics}


def score_samples(
    samples: Sequence[Sample], metrics: Sequence[Metric], workers: int = 2, progress: bool = False
) -> list[dict[str, MetricResult]]:
    """Per-sample results of every metric (in input order).

    Audio metrics run in ``workers`` processes (spawned; each loads its models once in its initializer);
    ``workers <= 1`` scores in this process. Text-only metrics always run here (they are cheap).
    """
    audio_metrics = [m for m in metrics if NEEDS_TRANSCRIPT not in m.needs]
    text_metrics = [m for m in metrics if NEEDS_TRANSCRIPT in m.needs]
    results: list[dict[str, MetricResult]] = [{} for _ in samples]
    if audio_metrics and samples:
        names = [m.name for m in audio_metrics]
        if workers > 1 and len(samples) > 1:
            import multiprocessing as mp
            from concurrent.futures.process import BrokenProcessPool

            try:
                with ProcessPoolExecutor(
                    max_workers=min(workers, len(samples)),
                    mp_context=mp.get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(names,),
                ) as pool:
                    it = pool.map(_score_in_worker, samples, chunksize=1)
                    for i, res in enumerate(_progress(it, len(samples), progress)):
                        results[i].update(res)
            except BrokenProcessPool:  # a worker died (a native crash); what was scored is kept
                why = "n/a: a metric worker process died while scoring (rerun with --workers 1 to find the clip)"
                for r in results:
                    if not r:
                        r.update({m.name: MetricResult(None, why) for m in audio_metrics})
        else:
            for i, s in enumerate(_progress(samples, len(samples), progress)):
                results[i].update({m.name: m.compute(s) for m in audio_metrics})
                s.cache.clear()
    for i, s in enumerate(samples):
        results[i].update({m.name: m.compute(s) for m in text_metrics})
    # Keep the caller's metric order.
    return [{m.name: r[m.name] for m in metrics} for r in results]


def _progress(it, total: int, enabled: bool):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc="scoring", unit="utt")


# ---------------------------------------------------------------- run folders


def _read_run(run_dir: Path) -> tuple[dict, dict[str, dict[str, dict]]]:
    """run.json and, per backend key, per utterance, the final attempt's ``{"status", "errors"}``."""
    meta_path = run_dir / "run.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no run.json)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    final: dict[str, dict[str, dict]] = {}
    attempts: dict[tuple[str, str], dict] = {}
    events = run_dir / "events.jsonl"
    lines = events.read_text(encoding="utf-8").splitlines() if events.exists() else []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            if lineno == len(lines):  # a run killed mid-write leaves a torn last line
                continue
            raise ValueError(f"{events}:{lineno}: not valid JSON") from None
        key = (ev.get("b"), ev.get("u"))
        att = attempts.setdefault(key, {"a": ev.get("a", 1), "errors": []})
        if ev.get("a", 1) != att["a"]:
            attempts[key] = att = {"a": ev.get("a", 1), "errors": []}
        if ev.get("e") == "error":
            att["errors"].append(f"{ev.get('kind')}: {ev.get('reason')}")
        elif ev.get("e") == "audible":
            att["silent"] = ev.get("s") is None
        elif ev.get("e") == "utt_end":
            status = ev.get("status")
            if status == "ok" and att.get("silent"):  # a log from before no_answer was a status of its own
                status = "no_answer"
            final.setdefault(key[0], {})[key[1]] = {"status": status, "errors": list(att["errors"])}
    return meta, final


def _not_scored(fin: dict) -> str:
    """Why an utterance that did not end ``ok`` gets no quality numbers."""
    why = "; ".join(fin["errors"]) or "no reason logged"
    if fin["status"] == "no_answer":
        return "no answer: the output was never audible"
    if fin["status"] == "truncated":
        return f"answer truncated, not scored ({why})"
    return f"utterance failed ({why})"


def _slug(key: str) -> str:
    from ..results import slug

    return slug(key)


def _utterances(meta: dict) -> tuple[dict[str, Any], str | None]:
    """The run's utterances by id, or ({}, reason) when its data cannot be loaded here."""
    data = meta.get("data") or {}
    name = data.get("name")
    if not name:
        return {}, "n/a: run.json names no data set"
    try:
        from ..data import load_utterances

        utts = load_utterances(name, split=data.get("split"), limit=data.get("limit"))
    except Exception as exc:  # a missing dataset must not stop scoring of reference-free metrics
        return {}, f"n/a: data {name!r} not available here ({exc})"
    return {u.id: u for u in utts}, None


def _utt_audio(utt, which: str) -> tuple[np.ndarray | None, int | None]:
    from ..audio import read_audio

    if which == "input":
        if utt.audio_array is not None:
            return np.asarray(utt.audio_array, dtype=np.float32), int(utt.sample_rate)
        if utt.audio_path:
            return read_audio(utt.audio_path)
        return None, None
    if utt.response_audio_path:
        return read_audio(utt.response_audio_path)
    return None, None


SUITE_METRICS = {
    "quality": ("pesq", "stoi", "estoi", "si_sdr", "log_mel_distance", "dnsmos", "speaker_sim"),
    "intelligibility": ("wer", "cer", "cer_codepoint", "chrf", "stoi", "estoi"),
}
"""What ``s2s-bench run --suite NAME`` and ``suites/test_NAME.py`` score after measuring latency."""


def score_run(
    run_dir: str | Path,
    metrics: str | Sequence[str] | None = None,
    judge=None,
    target: str = "input",
    workers: int = 2,
    progress: bool = False,
) -> dict[str, dict[str, dict]]:
    """Score every backend's outputs in a run folder; write ``scores.jsonl`` and ``metrics`` into run.json.

    ``target`` says what an output is compared with: ``"input"`` (the utterance's own audio and transcript: codecs,
    loopback, speech-to-speech translation sanity) or ``"response"`` (the data's reference answer audio and
    ``response_text``). ``judge`` is an ASR judge object or spec (``"whisper:path=..."``); without one the
    transcript metrics are ``n/a``. Backends marked ``latency_only`` get no quality numbers. Failed utterances
    and unreadable outputs are ``n/a`` with the reason; nothing raises for one bad file.

    Rescoring replaces the chosen metrics and keeps others already in the folder; run.json's ``scoring`` records,
    per metric, the target and the judge's ``info`` (model, revision, language, decoding).

    Returns ``{backend_key: {metric_name: corpus aggregate}}`` (the same objects written to run.json). The Ray
    executor scores shards of the utterances on workers (:func:`score_utterances`) and writes their results
    with :func:`write_scores`, so both paths write the same files.
    """
    t_start = time.perf_counter()
    scored = score_utterances(run_dir, metrics, judge, target, workers, progress=progress)
    return write_scores(run_dir, scored, target, workers, time.perf_counter() - t_start)


def score_utterances(
    run_dir: str | Path,
    metrics: str | Sequence[str] | None = None,
    judge=None,
    target: str = "input",
    workers: int = 2,
    ids: Sequence[str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Per-utterance results of ``metrics`` for the run's utterances (every one, or those in ``ids``).

    Returns ``{"metrics": [names], "results": {key: {uid: {metric: MetricResult}}}, "transcripts": {key: {uid:
    text}}, "audio_s": output audio seconds scored, "judge_info": the judge's info or None}`` (picklable).
    """
    from . import get_metrics

    if target not in TARGETS:
        raise ValueError(f"Expected argument `target` to be one of {TARGETS} but got {target!r}")
    run_dir = Path(run_dir)
    chosen = get_metrics(metrics)
    meta, final = _read_run(run_dir)
    utts, data_reason = _utterances(meta)
    if isinstance(judge, str):
        from .judges import create_judge

        judge = create_judge(judge)
    want_transcript = judge is not None and any(NEEDS_TRANSCRIPT in m.needs for m in chosen)
    only = set(ids) if ids is not None else None

    audio_seconds: dict[tuple[str, str], float] = {}
    results: dict[str, dict[str, dict[str, MetricResult]]] = {}
    all_transcripts: dict[str, dict[str, str]] = {}
    for backend in meta.get("backends", []):
        key = backend["key"]
        uids = [u for u in final.get(key, {}) if only is None or u in only]
        per_utt: dict[str, dict[str, MetricResult]] = {}
        samples, sample_uids = [], []
        transcripts: dict[str, str] = {}
        for uid in uids:
            fin = final[key][uid]
            if backend.get("latency_only"):
                per_utt[uid] = {m.name: MetricResult(None, LATENCY_ONLY) for m in chosen}
                continue
            if fin["status"] != "ok":
                per_utt[uid] = {m.name: MetricResult.na(_not_scored(fin)) for m in chosen}
                continue
            sample = Sample(uid)
            try:
                from ..audio import read_audio

                sample.audio, sample.sr = read_audio(run_dir / "outputs" / _slug(key) / f"{uid}.wav")
                audio_seconds[(key, uid)] = sample.audio.size / sample.sr
            except Exception as exc:
                per_utt[uid] = {m.name: MetricResult.na(f"output audio unreadable ({exc})") for m in chosen}
                continue
            utt = utts.get(uid)
            if utt is not None:
                try:
                    sample.ref_audio, sample.ref_sr = _utt_audio(utt, target)
                except Exception as exc:
                    sample.cache["ref_error"] = str(exc)
                sample.ref_text = utt.text if target == "input" else utt.response_text
            if want_transcript and sample.audio.size:
                try:
                    sample.transcript = transcripts[uid] = judge.transcribe(sample.audio, sample.sr)
                except Exception as exc:  # a judge crash on one clip is that clip's n/a, not the run's end
                    sample.cache["judge_error"] = f"{type(exc).__name__}: {exc}"
            samples.append(sample)
            sample_uids.append(uid)
        for uid, res in zip(
            sample_uids, score_samples(samples, chosen, workers=workers, progress=progress), strict=True
        ):
            per_utt[uid] = res
        for s in samples:  # explain n/a results whose cause is known more precisely
            for _name, r in per_utt[s.id].items():
                if r.value is None and s.id not in utts and data_reason and "reference" in (r.reason or ""):
                    r.reason = data_reason
                elif r.value is None and "ref_error" in s.cache and "reference audio" in (r.reason or ""):
                    r.reason = f"n/a: reference audio unreadable ({s.cache['ref_error']})"
                elif r.value is None and "judge_error" in s.cache and "ASR judge" in (r.reason or ""):
                    r.reason = f"n/a: ASR judge failed ({s.cache['judge_error']})"
        results[key] = per_utt
        all_transcripts[key] = transcripts
    return {
        "metrics": [m.name for m in chosen],
        "results": results,
        "transcripts": all_transcripts,
        "audio_s": sum(audio_seconds.values()),
        "judge_info": getattr(judge, "info", None) if judge is not None else None,
    }


def write_scores(
    run_dir: str | Path, scored: dict[str, Any], target: str, workers: int, wall_s: float
) -> dict:
    """Write what :func:`score_utterances` returned (one call's, or shards' joined) into the run folder:
    ``scores.jsonl`` lines and run.json's ``metrics``, ``scoring`` and ``scoring_log``; returns the aggregates."""
    from . import get_metrics

    run_dir = Path(run_dir)
    chosen = get_metrics(scored["metrics"])
    meta, final = _read_run(run_dir)
    lines: list[dict] = []
    summaries: dict[str, dict[str, dict]] = {}
    for backend in meta.get("backends", []):
        key = backend["key"]
        uids = list(final.get(key, {}))
        per_utt = scored["results"].get(key, {})
        transcripts = scored["transcripts"].get(key, {})
        missing = [u for u in uids if u not in per_utt]
        if missing:
            raise ValueError(
                f"{key}: no scores for {len(missing)} utterance(s) of {run_dir} ({missing[:3]} ...)"
            )
        summaries[key] = {m.name: aggregate(m, [per_utt[u][m.name] for u in uids]) for m in chosen}
        for uid in uids:
            for m in chosen:
                rec = {"b": key, "u": uid, "metric": m.name, **per_utt[uid][m.name].to_record()}
                if NEEDS_TRANSCRIPT in m.needs and uid in transcripts:
                    rec["transcript"] = transcripts[uid]
                lines.append(rec)

    # Rescoring replaces these metrics' lines and keeps the others (the quality and intelligibility suites
    # score one run folder in turn).
    names = {m.name for m in chosen}
    scores_path = run_dir / "scores.jsonl"
    kept = []
    if scores_path.exists():
        for line in scores_path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not (rec.get("metric") in names and rec.get("b") in summaries):
                kept.append(rec)
    _write_jsonl(scores_path, kept + lines)
    meta.setdefault("summary", {})
    for key, agg in summaries.items():
        meta["summary"].setdefault(key, {}).setdefault("metrics", {}).update(agg)
    scoring = meta.setdefault("scoring", {})
    for name in names:
        scoring[name] = {"target": target, "judge": scored.get("judge_info")}
    # How long this scoring took (wall, incl. pool start-up and the judge), next to how much audio it scored.
    meta.setdefault("scoring_log", []).append(
        {
            "metrics": sorted(names),
            "workers": workers,
            "wall_s": round(wall_s, 3),
            "output_audio_s": round(scored["audio_s"], 3),
            **({"executor": scored["executor"]} if scored.get("executor") else {}),
        }
    )
    _write_json_atomic(run_dir / "run.json", meta)
    return summaries


def _write_jsonl(path: Path, records: list[dict]) -> None:
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
