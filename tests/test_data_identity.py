"""A built-in set's identity (voices, synthesiser versions, checksum) travels into run.json; a set built without
one of its reference voices says so loudly, is another identity, and gates call it not comparable."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("espeakng_loader", reason="espeak-ng synthesis needs the 'data' extra (espeakng-loader)")

from harness.cli import main  # noqa: E402
from harness.datasets import festival  # noqa: E402
from harness.datasets.identity import read_identity  # noqa: E402
from harness.datasets.telugu import build_telugu_mini  # noqa: E402
from harness.results import load_run  # noqa: E402

TINY = dict(n_espeak=4, limit_sentences=1, progress=False)
NO_FESTIVAL_TE = "festival-te is not installed (/nowhere/telugu_phones.scm missing)"


def test_festival_without_festival_te_is_not_available(monkeypatch):
    """festvox-te-nsk only recommends festival-te; without its phone set every festival utterance fails."""
    monkeypatch.setattr(festival, "PHONESET", festival.Path("/nowhere/telugu_phones.scm"), raising=False)
    monkeypatch.setattr(festival.shutil, "which", lambda name: "/usr/bin/festival")
    monkeypatch.setattr(festival, "VOICE_DIR", festival.Path("/"))  # the voice itself "is installed"
    ok, why = festival.festival_available()
    assert not ok and "festival-te" in why and "telugu_phones.scm" in why


@pytest.fixture(scope="module")
def degraded_set(tmp_path_factory):
    """telugu-mini's recipe with festival unusable here: four voices instead of five."""
    mp = pytest.MonkeyPatch()
    mp.setattr(festival, "festival_available", lambda: (False, NO_FESTIVAL_TE))
    try:
        return build_telugu_mini(tmp_path_factory.mktemp("degraded"), **TINY)
    finally:
        mp.undo()


def test_a_build_without_a_reference_voice_is_degraded_and_says_why(degraded_set, capfd):
    identity = json.loads((degraded_set.parent / "build.json").read_text())["identity"]
    assert identity["degraded"] is True and identity["missing_voices"] == [festival.SPEAKER]
    assert NO_FESTIVAL_TE in identity["degraded_reason"]
    assert len(identity["voices"]) == 4 and len(identity["reference_voices"]) == 5
    assert identity["synthesizers"]["espeakng-loader"]
    assert len(identity["manifest_sha256"]) == 64


def test_the_degraded_build_warns_loudly(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(festival, "festival_available", lambda: (False, NO_FESTIVAL_TE))
    build_telugu_mini(tmp_path, **TINY)
    assert "WARNING: telugu-mini was built DEGRADED: no festival-te-nsk voice" in capfd.readouterr().err


def test_run_json_carries_the_identity_and_strict_data_refuses_a_degraded_set(degraded_set, tmp_path, capsys):
    args = ["run", "-b", "loopback", "--data", str(degraded_set), "--pacing", "fast", "--warmup", "0", "-q"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    assert "WARNING: data set telugu-mini is DEGRADED" in capsys.readouterr().err
    identity = load_run(tmp_path / "run").meta["data"]["identity"]
    assert identity == read_identity(degraded_set.parent)
    assert main([*args, "--out", str(tmp_path / "strict"), "--strict-data"]) == 2
    assert "Refused: --strict-data" in capsys.readouterr().err
    assert not (tmp_path / "strict").exists()


def test_gate_calls_a_degraded_run_not_comparable(degraded_set, tmp_path):
    from harness.gate import compare, load_candidate, parse_rules
    from harness.runner import run_benchmark

    espeak_only = build_telugu_mini(tmp_path / "full", with_festival=False, n_espeak=4, limit_sentences=2)
    base = run_benchmark(["loopback"], str(espeak_only), out=tmp_path / "base", pacing="fast", progress=False)
    cand = run_benchmark(
        ["loopback"], str(degraded_set), out=tmp_path / "cand", pacing="fast", progress=False
    )
    (verdict,) = compare(load_candidate(base), load_candidate(cand), parse_rules(["ttfa.p50:+10%"]))
    assert verdict.verdict == "x"
    assert "candidate's set is DEGRADED" in verdict.note and "baseline's set is DEGRADED" in verdict.note


@pytest.mark.skipif(not festival.festival_available()[0], reason=festival.festival_available()[1])
def test_a_complete_build_is_not_degraded_and_records_festival_versions(tmp_path, degraded_set):
    manifest = build_telugu_mini(tmp_path, **TINY)
    identity = read_identity(manifest.parent)
    assert identity["degraded"] is False and festival.SPEAKER in identity["voices"]
    assert identity["synthesizers"]["festival-te"] and identity["synthesizers"]["festvox-te-nsk"]
    assert identity["manifest_sha256"] != read_identity(degraded_set.parent)["manifest_sha256"]
