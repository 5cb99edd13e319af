"""score_run on run folders written by hand in the run format; registry; process pool."""

import json

import numpy as np
import pytest

from harness.audio import first_audible_sample, write_audio
from harness.datasets import synthetic_clips
from harness.hookspecs import hookimpl
from harness.metrics import Metric, Sample, get_metrics, metric_registry, score_run
from harness.metrics.scoring import LATENCY_ONLY, score_samples
from harness.plugins import pm

pytest.importorskip("pesq")


def write_run(run, backends, outputs, failed=(), torn_tail=False):
    """A run folder as the runner writes it: run.json, events.jsonl, outputs/<slug>/<utt>.wav."""
    events = []
    for b in backends:
        key = b["key"]
        for uid, audio in outputs.items():
            events.append(
                {"e": "utt_start", "b": key, "u": uid, "a": 1, "t": 0, "in_sr": 16000, "out_sr": 16000}
            )
            if uid in failed:
                events.append(
                    {
                        "e": "error",
                        "b": key,
                        "u": uid,
                        "a": 1,
                        "t": 5,
                        "kind": "crash",
                        "reason": "RuntimeError: boom",
                    }
                )
                events.append({"e": "utt_end", "b": key, "u": uid, "a": 1, "t": 6, "status": "failed"})
                continue
            write_audio(run / "outputs" / key.replace(":", "_") / f"{uid}.wav", audio, 16000)
            events.append(
                {
                    "e": "utt_end",
                    "b": key,
                    "u": uid,
                    "a": 1,
                    "t": 9,
                    "status": "ok",
                    "out_samples": int(audio.size),
                }
            )
    text = "".join(json.dumps(e) + "\n" for e in events) + ('{"e": "utt_st' if torn_tail else "")
    (run / "events.jsonl").write_text(text)
    (run / "run.json").write_text(
        json.dumps(
            {
                "schema": "s2s-bench.run/1",
                "status": "complete",
                "data": {
                    "name": "synthetic-clips",
                    "split": "test",
                    "limit": len(outputs),
                    "n": len(outputs),
                },
                "backends": backends,
                "summary": {b["key"]: {"n": len(outputs)} for b in backends},
            }
        )
    )


def test_score_run_loopback_is_near_pesq_max_and_reports_every_utterance(tmp_path):
    clips = list(synthetic_clips(n=3))
    # What loopback returns: its input from the first audible sample (-40 dBFS rule) on.
    outputs = {u.id: u.audio_array[first_audible_sample(u.audio_array, 16000) :] for u in clips}
    backends = [
        {"key": "loopback", "name": "loopback", "latency_only": False},
        {"key": "big:random=1", "name": "big", "latency_only": True},
    ]
    write_run(tmp_path, backends, outputs, failed={"synth-0002"}, torn_tail=True)
    summary = score_run(tmp_path, metrics="pesq,si_sdr,wer", workers=0)

    scores = [json.loads(x) for x in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert len(scores) == 2 * 3 * 3  # backend x utterance x metric, n/a included
    assert all(s["value"] is not None or s["reason"] for s in scores)
    by = {(s["b"], s["u"], s["metric"]): s for s in scores}
    for uid in ("synth-0000", "synth-0001"):
        assert by[("loopback", uid, "pesq")]["value"] > 4.4  # wide-band PESQ tops out at 4.64
        assert by[("loopback", uid, "si_sdr")]["value"] > 30
        assert by[("loopback", uid, "wer")]["reason"] == "n/a: no reference text for this utterance"
    failed = by[("loopback", "synth-0002", "pesq")]
    assert failed["value"] is None and "crash: RuntimeError: boom" in failed["reason"]
    assert all(by[("big:random=1", u, "pesq")]["reason"] == LATENCY_ONLY for u in outputs)

    meta = json.loads((tmp_path / "run.json").read_text())
    pesq = meta["summary"]["loopback"]["metrics"]["pesq"]
    assert pesq["n"] == 2 and pesq["n_na"] == 1 and pesq["unit"] == "MOS-LQO" and pesq["higher_is_better"]
    assert pesq["value"] > 4.4 and len(pesq["ci95"]) == 2
    assert meta["summary"]["loopback"]["n"] == 3  # the runner's fields are kept
    log = meta["scoring_log"][-1]
    assert log["metrics"] == ["pesq", "si_sdr", "wer"] and log["wall_s"] > 0
    scored_s = sum(a.size for u, a in outputs.items() if u != "synth-0002") / 16000  # latency-only: not read
    assert log["output_audio_s"] == pytest.approx(scored_s, abs=1e-3)
    assert meta["summary"]["big:random=1"]["metrics"]["pesq"] == {
        "value": None,
        "reason": LATENCY_ONLY,
        "unit": "MOS-LQO",
        "higher_is_better": True,
        "n": 0,
        "n_na": 3,
    }
    assert summary["loopback"]["wer"]["value"] is None


def test_unreadable_output_is_na_naming_the_file(tmp_path):
    clip = next(iter(synthetic_clips(n=1))).audio_array
    write_run(tmp_path, [{"key": "loopback", "name": "loopback"}], {"synth-0000": clip})
    wav = tmp_path / "outputs" / "loopback" / "synth-0000.wav"
    wav.write_bytes(b"not a wav")
    summary = score_run(tmp_path, metrics="stoi", workers=0)
    assert summary["loopback"]["stoi"]["value"] is None
    assert "synth-0000.wav" in summary["loopback"]["stoi"]["reason"]


def test_process_pool_gives_the_same_values_as_in_process():
    clips = [u.audio_array for u in synthetic_clips(n=3, seed=11)]
    rng = np.random.default_rng(0)
    samples = [
        Sample(
            f"s{i}",
            audio=c + 0.01 * rng.standard_normal(c.size).astype(np.float32),
            sr=16000,
            ref_audio=c,
            ref_sr=16000,
        )
        for i, c in enumerate(clips)
    ]
    metrics = get_metrics("pesq,stoi,log_mel_distance")
    serial = score_samples(samples, metrics, workers=0)
    pooled = score_samples(samples, metrics, workers=2)
    for a, b in zip(serial, pooled, strict=True):
        for name in a:
            assert a[name].value == pytest.approx(b[name].value, rel=1e-9), name


def test_metric_groups_unknown_names_and_plugin_metrics():
    assert [m.name for m in get_metrics("dnsmos")] == [
        "dnsmos_sig",
        "dnsmos_bak",
        "dnsmos_ovrl",
        "dnsmos_p808",
    ]
    with pytest.raises(ValueError, match="Unknown metric 'pessq'; known metrics: .*pesq"):
        get_metrics("pessq")

    class Plugin:
        @hookimpl
        def register_metrics(self, register):
            register(Metric("peak_dbfs", lambda s: 20 * np.log10(np.max(np.abs(s.audio))), "dBFS", False))

    plugin = Plugin()
    pm.register(plugin)
    try:
        (m,) = get_metrics("peak_dbfs")
        assert m.compute(Sample("x", audio=np.full(10, 0.5), sr=16000)).value == pytest.approx(
            -6.0206, abs=1e-3
        )
        assert "pesq" in metric_registry()
    finally:
        pm.unregister(plugin)


def test_empty_nan_and_crashing_cases_are_na_with_reasons():
    pesq, dns = get_metrics("pesq,dnsmos_ovrl")
    ref = np.ones(16000, np.float32)
    r = pesq.compute(Sample("e", audio=np.zeros(0, np.float32), sr=16000, ref_audio=ref, ref_sr=16000))
    assert r.value is None and "empty (0 samples)" in r.reason
    bad = np.ones(16000, np.float32)
    bad[5] = np.nan
    r = dns.compute(Sample("n", audio=bad, sr=16000))
    assert r.value is None and "1 NaN/inf samples" in r.reason

    def boom(sample):
        raise RuntimeError("native library said no")

    r = Metric("boom", boom, "x", True).compute(Sample("clip-7", audio=ref, sr=16000))
    assert r.value is None and r.reason == "n/a: clip-7: boom failed (RuntimeError: native library said no)"
