"""Rescoring a run from its folder: a round-1 log (no speech ends) gets them re-derived from its inputs."""

import json

import numpy as np
import soundfile as sf

from harness.latency import summarize
from harness.rescore import check_run, rescore
from harness.results import load_run
from harness.runner import run_benchmark


def _manifest(tmp_path):
    """Two clips of tone bursts, each followed by 0.6 s of silence, as a manifest the rescorer can load again."""
    from test_vad import bursts

    folder = tmp_path / "data"
    folder.mkdir()
    lines = []
    for i in range(2):
        sf.write(
            folder / f"b{i}.wav", bursts(lead_s=0.1, speech_s=0.5, tail_s=0.6, seed=i), 16000, subtype="FLOAT"
        )
        lines.append(json.dumps({"id": f"b{i}", "audio": f"b{i}.wav", "split": "test"}))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return str(folder / "manifest.jsonl")


def test_a_log_without_speech_ends_is_rescored_from_its_inputs(tmp_path):
    data = _manifest(tmp_path)
    out = run_benchmark(
        ["loopback"], data, pacing="fast", vad="energy", warmup=0, out=tmp_path / "r", progress=False
    )
    run = load_run(out)
    assert run.summary["loopback"]["speech_end_from"]["vad"] == 2
    # Make it a round-1 log: no speech end in utt_start.
    events = [
        {k: v for k, v in e.items() if k not in ("speech_end_s", "speech_end_from")}
        if e["e"] == "utt_start"
        else e
        for e in run.events
    ]
    (out / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    old = load_run(out)
    assert summarize(old.events)["loopback"]["speech_end_from"]["file_end"] == 2  # the log alone cannot say
    fresh, notes = rescore(old)
    assert notes == ["speech end re-derived from the inputs for 2 utterances"]
    assert json.dumps(fresh, sort_keys=True) == json.dumps(run.summary, sort_keys=True)
    assert check_run(old) == []


def test_rescore_says_when_the_inputs_are_not_the_runs(tmp_path):
    data = _manifest(tmp_path)
    out = run_benchmark(
        ["loopback"], data, pacing="fast", vad="energy", warmup=0, out=tmp_path / "r", progress=False
    )
    sf.write(tmp_path / "data" / "b0.wav", np.zeros(16000, np.float32) + 0.1, 16000)  # the data changed since
    meta = json.loads((out / "run.json").read_text())
    meta["data"]["ids_sha256"] = "0" * 64  # and its identity no longer matches
    (out / "run.json").write_text(json.dumps(meta))
    events = [
        {k: v for k, v in e.items() if k != "speech_end_s"} if e["e"] == "utt_start" else e
        for e in load_run(out).events
    ]
    for e in events:
        e.pop("speech_end_from", None)
    (out / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    fresh, notes = rescore(load_run(out))
    assert "cannot be re-derived" in notes[0] and "not the run's" in notes[0]
    assert fresh["loopback"]["speech_end_from"]["file_end"] == 2
