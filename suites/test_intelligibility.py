"""Intelligibility suite: ``pytest suites/test_intelligibility.py --backend=SPEC --asr-judge=whisper:path=DIR``.

Transcribes each output with the ASR judge (Telugu forced, greedy) and scores WER, CER (grapheme clusters and code
points) and chrF against the expected text (the input's transcript, or ``response_text`` with
``--s2s-target=response``), plus STOI/ESTOI against the reference audio. Without a judge, the transcript metrics are
``n/a`` with the reason. Asserts integrity only: every utterance scored or ``n/a`` with a reason, corpus WER/CER
equal to total errors over total reference units, judge identity recorded.
"""

from __future__ import annotations

import json

import pytest
from _scoring import check_integrity, read_scores

from harness.metrics import get_metrics, score_run
from harness.metrics.scoring import SUITE_METRICS

INTELLIGIBILITY = list(SUITE_METRICS["intelligibility"])


@pytest.fixture(scope="session")
def intelligibility_scores(s2s_run, request):
    cfg = request.config
    return score_run(
        s2s_run.path,
        metrics=INTELLIGIBILITY,
        judge=cfg.getoption("asr_judge"),
        target=cfg.getoption("s2s_target"),
        workers=cfg.getoption("s2s_score_workers"),
    )


def test_every_utterance_scored_or_na_with_reason(s2s_run, s2s_backend_key, intelligibility_scores):
    assert s2s_backend_key in intelligibility_scores
    check_integrity(s2s_run, s2s_backend_key, [m.name for m in get_metrics(INTELLIGIBILITY)])


def test_transcripts_and_judge_are_recorded(s2s_run, s2s_backend_key, intelligibility_scores, request):
    lines = [s for s in read_scores(s2s_run.path) if s["b"] == s2s_backend_key and s["metric"] == "wer"]
    if request.config.getoption("asr_judge") is None:
        assert all(s["value"] is None for s in lines)
        assert all(
            "no ASR judge" in s["reason"]
            or "reference text" in s["reason"]
            or "failed" in s["reason"]
            or "latency only" in s["reason"]
            or "no answer" in s["reason"]
            or "truncated" in s["reason"]
            for s in lines
        )
        return
    meta = json.loads((s2s_run.path / "run.json").read_text(encoding="utf-8"))
    info = meta["scoring"]["wer"]["judge"]
    assert info["language"] == "te" and info["decoding"]["num_beams"] == 1 and info["model"]
    for s in lines:
        if s["value"] is not None:
            assert "transcript" in s and s["detail"]["ref_len"] > 0
