"""Rescore a run from its folder alone, and check that the folder holds what its log says.

``s2s-bench rescore RUN`` recomputes every latency summary from ``events.jsonl`` through :mod:`harness.latency`.
The end of each input's speech comes from its ``utt_start`` event; a log without it (runs from before the harness
recorded it) has it re-derived from the inputs, with the run's VAD (harness.vad), when the run's data can be
loaded here and is the same data (utterance ids and checksums match run.json's ``data.ids_sha256``).

``--check`` trusts nothing recorded: it re-derives each output's first audible sample (and, in turn-taking logs,
its audible segments) from its WAV, checks the WAV's length against ``out_samples`` and the ``out`` events, checks
the order of each utterance's events, and re-derives the speech ends from the inputs (when available) to compare
them with the log's.
"""

from __future__ import annotations

from typing import Any

from .latency import final_attempts, summarize
from .results import Run

SPEECH_END_TOLERANCE_S = 1e-6


def _run_utterances(meta: dict) -> tuple[list[Any] | None, str]:
    """The run's utterances, or (None, why not) when they cannot be loaded here or are not the run's."""
    from .data import load_utterances
    from .run_folder import data_identity_of_run

    data = meta.get("data") or {}
    name = data.get("name")
    if not name:
        return None, "run.json names no data set"
    try:
        utts = load_utterances(name, split=data.get("split"), limit=data.get("limit"))
    except Exception as exc:  # noqa: BLE001 - a missing corpus only means the speech ends cannot be re-derived
        return None, f"data {name!r} cannot be loaded here ({exc})"
    ident = data_identity_of_run(name, data.get("split"), data.get("limit"), utts)
    if data.get("ids_sha256") and ident["ids_sha256"] != data["ids_sha256"]:
        return None, f"data {name!r} here is not the run's (utterance ids or checksums differ)"
    return utts, ""


def derive_speech_ends(
    meta: dict, ids: set[str] | None = None
) -> tuple[dict[str, tuple[float | None, str]], str]:
    """(end of speech in s or None, ``vad``/``annotation``/``no_speech``) of the run's inputs by utterance id,
    with the run's VAD method; ({}, reason) when the inputs are not available."""
    from .vad import speech_of_utterances

    utts, why = _run_utterances(meta)
    if utts is None:
        return {}, why
    if ids is not None:
        utts = [u for u in utts if u.id in ids]
    method = (meta.get("vad") or {}).get("method", "auto")
    found = speech_of_utterances(utts, method)
    return {uid: (sp.speech_end_s, sp.speech_end_from) for uid, sp in found.items() if sp is not None}, ""


def lacking_speech_end(events: list[dict]) -> set[str]:
    """Utterances whose ``utt_start`` does not record the end of speech (logs from before round 2)."""
    return {
        ev["u"]
        for ev in events
        if ev.get("e") == "utt_start" and "speech_end_s" not in ev and "speech_end_from" not in ev
    }


def rescore(run: Run) -> tuple[dict[str, dict], list[str]]:
    """(latency summaries, notes) from the run's events; speech ends missing from the log are re-derived."""
    notes: list[str] = []
    lacking = lacking_speech_end(run.events)
    speech_ends: dict[str, tuple[float | None, str]] = {}
    if lacking:
        speech_ends, why = derive_speech_ends(run.meta, lacking)
        if why:
            notes.append(
                f"{len(lacking)} utterances have no speech end in the log and it cannot be re-derived ({why}): "
                "their figures are from the end of the file"
            )
        else:
            notes.append(f"speech end re-derived from the inputs for {len(speech_ends)} utterances")
    return summarize(run.events, speech_ends), notes


def check_run(run: Run) -> list[str]:
    """Problems found by re-deriving what the log records (empty when the folder is consistent)."""
    from .audio import AudioError, first_audible_sample, read_audio

    problems: list[str] = []
    save_audio = (run.meta.get("settings") or {}).get("save_audio", True)
    for (b, u), evs in sorted(final_attempts(run.events).items()):
        where = f"{b} {u}"
        timed = [e for e in evs if "t" in e]
        if [e["t"] for e in timed] != sorted(e["t"] for e in timed):
            problems.append(f"{where}: events out of time order")
        kinds = [e["e"] for e in timed]
        if "utt_start" in kinds and kinds[0] != "utt_start":
            problems.append(f"{where}: first event is {kinds[0]!r}, not utt_start")
        if "input_end" in kinds and "push" in kinds:
            if kinds.index("input_end") < max(i for i, k in enumerate(kinds) if k == "push"):
                problems.append(f"{where}: input_end before the last push")
        end = next(e for e in evs if e["e"] == "utt_end")
        if end["status"] == "failed" or "utt_start" not in kinds:
            continue
        n_out = sum(e["n"] for e in evs if e["e"] == "out")
        if end.get("out_samples") != n_out:
            problems.append(
                f"{where}: out_samples {end.get('out_samples')} but the out events add up to {n_out}"
            )
        logged = next((e["s"] for e in evs if e["e"] == "audible"), None)
        if not save_audio or n_out == 0:
            if n_out == 0 and logged is not None:
                problems.append(f"{where}: audible at sample {logged} but there is no output")
            continue
        try:
            audio, sr = read_audio(run.output_path(b, u))
        except AudioError as exc:
            problems.append(f"{where}: output audio unreadable ({exc})")
            continue
        if audio.size != n_out:
            problems.append(f"{where}: the WAV has {audio.size} samples but the log {n_out}")
        onset = first_audible_sample(audio, sr)
        if onset != logged:
            problems.append(f"{where}: first audible sample is {onset} in the WAV but {logged} in the log")
        activity = next((e["segments"] for e in evs if e["e"] == "out_activity"), None)
        if activity is not None:
            from .turns.timeline import output_activity

            again = [list(seg) for seg in output_activity(audio, sr)]
            if again != [list(seg) for seg in activity]:
                problems.append(f"{where}: audible segments {again[:3]}... in the WAV differ from the log's")
    problems += _check_speech_ends(run)
    return problems


def _check_speech_ends(run: Run) -> list[str]:
    logged = {
        ev["u"]: (ev.get("speech_end_from"), ev.get("speech_end_s"))
        for ev in run.events
        if ev.get("e") == "utt_start" and "speech_end_s" in ev
    }
    if not logged:
        return []
    derived, why = derive_speech_ends(run.meta, set(logged))
    if why:
        return []  # nothing to compare with here; rescore's notes say so
    out = []
    for uid, (source, end_s) in sorted(logged.items()):
        if uid not in derived:
            continue
        again, again_source = derived[uid]
        if again_source != source or (
            again is not None and abs(again - float(end_s)) > SPEECH_END_TOLERANCE_S
        ):
            out.append(
                f"{uid}: speech end {end_s} s ({source}) in the log but {again} s ({again_source}) now"
            )
    return out
