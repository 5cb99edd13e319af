"""A token written into a backend spec never reaches a file, a folder name, the terminal or a report; and the
``remote`` backend's URL mistakes are said plainly (a missing ``/ws``, an ``http://`` URL)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("websockets")

from harness.backend import BackendError, BackendSpec  # noqa: E402
from harness.cli import main  # noqa: E402
from harness.registry import create_backend  # noqa: E402
from harness.server.serving import ServerThread, load_backend  # noqa: E402

SECRET = "S3cr3t-t0ken-4f9a"


@pytest.fixture(scope="module")
def server():
    with ServerThread(load_backend("loopback"), token=SECRET) as srv:
        yield srv


def test_spec_keys_redact_secrets_and_keep_them_for_the_backend():
    spec = BackendSpec.parse(
        f"remote:url=ws://u:{SECRET}@h:1/ws?token={SECRET}&x=1,token={SECRET},format=f32"
    )
    assert SECRET not in spec.key and SECRET not in str(spec)
    assert spec.key == "remote:url=ws://u:***@h:1/ws?token=***&x=1,token=***,format=f32"
    assert spec.options["token"] == SECRET  # the backend still gets it
    assert spec.redact(f"failed at ws://h:1/ws?token={SECRET}") == "failed at ws://h:1/ws?token=***"
    assert BackendSpec.parse("remote:token=env:MY_TOKEN").key == "remote:token=env:MY_TOKEN"
    with pytest.raises(BackendError) as exc:
        BackendSpec.parse(f"remote:url=ws://h:1/ws,{SECRET}")  # a mistyped option: not echoed
    assert SECRET not in str(exc.value)


def test_a_token_in_the_spec_is_redacted_everywhere(server, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    good = f"remote:url={server.url},token={SECRET}"
    wrong_token = f"remote:url={server.url}?token={SECRET}x,token={SECRET}y,connect_timeout_s=2"
    code = main(
        [
            "run",
            "-b",
            good,
            "-b",
            wrong_token,
            "--data",
            "synthetic-clips",
            "--limit",
            "2",
            "--pacing",
            "fast",
        ]
        + ["--warmup", "0", "-q", "--out", str(out)]
    )
    printed = capsys.readouterr()
    assert code == 1  # the second backend's token is wrong: all its utterances fail
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    printed_report = capsys.readouterr()
    for where, text in (("stdout", printed.out), ("stderr", printed.err), ("report", printed_report.out)):
        assert SECRET not in text, where
    assert "token=***" in printed.out
    leaks = []
    for path in [*out.rglob("*"), *(tmp_path / "report").rglob("*")]:
        if SECRET in path.name or (path.is_file() and SECRET.encode() in path.read_bytes()):
            leaks.append(str(path))
    assert leaks == []
    assert (out / "outputs" / f"remote_url=ws___127.0.0.1_{server.port}_ws_token=___").is_dir()


def test_an_http_url_is_a_usage_error(tmp_path, capsys):
    code = main(
        ["run", "-b", "remote:url=http://127.0.0.1:1/ws", "--data", "synthetic-clips", "--limit", "1"]
        + ["--out", str(tmp_path / "run"), "-q"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "ws:// or wss://" in err and "ws://127.0.0.1:1/ws" in err
    assert not (tmp_path / "run" / "run.json").exists()


def test_a_url_without_the_served_path_says_which_path(server):
    bare = server.url.removesuffix("/ws")
    backend = create_backend(f"remote:url={bare},token={SECRET}")
    with pytest.raises(BackendError) as exc:
        backend.load()
    message = str(exc.value)
    assert "serves the protocol at /ws" in message and f"url={server.url}" in message
    assert SECRET not in message
