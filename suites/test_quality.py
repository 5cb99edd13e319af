"""Quality suite: ``pytest suites/test_quality.py --backend=SPEC [--s2s-data telugu-mini --s2s-split test]``.

Runs the backends (one run, shared with the other suites of the session), scores every output with the
reference metrics (PESQ-WB, STOI, ESTOI, SI-SDR, log-mel distance; against the input or, with
``--s2s-target=response``, the data's reference answer), DNSMOS and speaker similarity, and checks that every
utterance was scored or is ``n/a`` with a reason. Quality values are never thresholds here, except the loopback
calibration: loopback returns its input, so its PESQ must be near the scale's top (this checks the alignment).
"""

from __future__ import annotations

import pytest
from _scoring import check_integrity, read_scores

from harness.metrics import get_metrics, score_run
from harness.metrics.scoring import SUITE_METRICS

QUALITY = list(SUITE_METRICS["quality"])
PESQ_WB_MAX = 4.644


@pytest.fixture(scope="session")
def quality_scores(s2s_run, request):
    cfg = request.config
    return score_run(
        s2s_run.path,
        metrics=QUALITY,
        target=cfg.getoption("s2s_target"),
        workers=cfg.getoption("s2s_score_workers"),
    )


def test_every_utterance_scored_or_na_with_reason(s2s_run, s2s_backend_key, quality_scores):
    assert s2s_backend_key in quality_scores
    check_integrity(s2s_run, s2s_backend_key, [m.name for m in get_metrics(QUALITY)])


def test_loopback_pesq_is_near_maximum(s2s_run, s2s_backend_key, quality_scores, request):
    backend = next(b for b in s2s_run.meta["backends"] if b["key"] == s2s_backend_key)
    if backend["name"] != "loopback" or request.config.getoption("s2s_target") != "input":
        pytest.skip("calibration check for loopback scored against its input")
    lines = [s for s in read_scores(s2s_run.path) if s["b"] == s2s_backend_key and s["metric"] == "pesq"]
    scored = [s for s in lines if s["value"] is not None]
    assert scored, f"no PESQ values: {[s.get('reason') for s in lines]}"
    for s in scored:
        assert s["value"] > PESQ_WB_MAX - 0.25, (
            f"{s['u']}: loopback PESQ {s['value']:.3f} (alignment {s.get('detail')})"
        )
