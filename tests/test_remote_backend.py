"""The ``remote`` backend against a server serving ``loopback``, measured by the runner side by side with direct
``loopback`` in one run: same audio (exact in f32, within 1 LSB in pcm16), both succeed, and the remote TTFA is not
below the direct one (it includes the network hop); no wall-clock thresholds."""

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("websockets")

from harness.backend import BackendError, BackendSpec  # noqa: E402
from harness.registry import create_backend  # noqa: E402
from harness.results import load_run  # noqa: E402
from harness.runner import run_benchmark  # noqa: E402
from harness.server.serving import ServerThread, load_backend  # noqa: E402
from tests.server_helpers import wait_sessions_freed  # noqa: E402

SERVED = "loopback:delay_ms=40"


@pytest.fixture(scope="module")
def server():
    with ServerThread(load_backend(SERVED), token="tok") as srv:
        yield srv


@pytest.fixture(scope="module")
def side_by_side(server, tmp_path_factory):
    remote_f32 = f"remote:url={server.url},token=tok,format=f32"
    remote_pcm16 = f"remote:url={server.url},token=tok,format=pcm16"
    out = run_benchmark(
        [SERVED, remote_f32, remote_pcm16],
        "synthetic-clips",
        limit=4,
        pacing="fast",
        out=tmp_path_factory.mktemp("remote") / "run",
        progress=False,
    )
    # run keys show the token as ***: the tests look the backends up by their keys
    keys = [BackendSpec.parse(spec).key for spec in (remote_f32, remote_pcm16)]
    return load_run(out), SERVED, *keys


def test_remote_gives_the_same_audio(side_by_side):
    run, direct, f32, pcm16 = side_by_side
    ids = run.utterance_ids(direct)
    assert len(ids) == 4
    for utt in ids:
        want, sr = run.output_audio(direct, utt)
        got32, sr32 = run.output_audio(f32, utt)
        got16, _ = run.output_audio(pcm16, utt)
        assert sr32 == sr == 16000
        assert np.array_equal(got32, want), f"{utt}: f32 over the wire differs from direct loopback"
        assert got16.size == want.size, f"{utt}: pcm16 answer has {got16.size} samples, direct {want.size}"
        # pcm16 on the way in and out: each trip rounds to the nearest LSB, the echo adds nothing
        assert np.max(np.abs(got16 - want)) <= 1.0 / 32767 + 1e-6, utt


def test_remote_ttfa_includes_the_hop(side_by_side):
    run, direct, f32, pcm16 = side_by_side
    s = run.summary
    for key in (direct, f32, pcm16):
        assert s[key]["n_ok"] == 4, (key, s[key].get("failures"))
    direct_p50 = s[direct]["ttfa_ms"]["p50"]
    # the server holds the answer for delay_ms=40 after *its* end of input, which comes after ours
    jitter_ms = 5.0
    assert s[f32]["ttfa_ms"]["p50"] >= direct_p50 - jitter_ms
    assert s[f32]["ttfa_ms"]["p50"] >= 40.0 - jitter_ms


def test_runner_records_server_errors_as_failures(server, tmp_path):
    with ServerThread(load_backend("loopback:fail=crash,every=2")) as crashing:
        out = run_benchmark(
            [f"remote:url={crashing.url}"],
            "synthetic-clips",
            limit=2,
            pacing="fast",
            out=tmp_path / "r",
            progress=False,
        )
        summary = load_run(out).summary[f"remote:url={crashing.url}"]
        assert summary["n_ok"] + summary["n_failed"] == 2 and summary["n_failed"] >= 1
        assert any("backend_error" in f["reason"] for f in summary["failures"])
        wait_sessions_freed(crashing.http_url)


def test_token_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("S2S_TEST_TOKEN", "tok")
    backend = create_backend(f"remote:url={server.url},token=env:S2S_TEST_TOKEN")
    backend.load()
    backend.open_session().close()
    assert backend.describe()["options"]["token"] == "env:S2S_TEST_TOKEN"
    monkeypatch.delenv("S2S_TEST_TOKEN")
    with pytest.raises(BackendError, match="S2S_TEST_TOKEN is not set"):
        backend.open_session()


def test_bad_token_and_unreachable_server_are_clear(server):
    backend = create_backend(f"remote:url={server.url},token=wrong")
    backend.load()  # /health is public
    with pytest.raises(BackendError, match="unauthorized"):
        backend.open_session()
    nowhere = create_backend("remote:url=ws://127.0.0.1:9/ws,connect_timeout_s=1")
    with pytest.raises(BackendError, match="cannot reach the server's health endpoint"):
        nowhere.load()
    with pytest.raises(BackendError, match="ws:// or wss://"):
        create_backend("remote:url=http://127.0.0.1:1/ws").load()
