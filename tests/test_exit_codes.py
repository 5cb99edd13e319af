"""``s2s-bench run``'s exit codes say what happened to the run: the failure policy, usage errors, signals, and a
backend thread still alive (inside torch) when the process ends (see ``harness/outcome.py``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.events import read_events
from harness.outcome import FailurePolicy

REPO = Path(__file__).resolve().parent.parent
FAST = ["--data", "synthetic-clips", "--pacing", "fast", "--warmup", "0", "-q"]


def run_cli(tmp_path, *args) -> int:
    return main(["run", *args, *FAST, "--out", str(tmp_path / "run")])


def test_every_utterance_failed_exits_1(tmp_path, capsys):
    assert run_cli(tmp_path, "-b", "loopback:fail=crash", "--limit", "2") == 1
    captured = capsys.readouterr()
    assert "FAILED loopback:fail=crash: 2 failed of 2" in captured.out
    assert "broke the failure policy" in captured.err


def test_failures_within_the_policy_exit_0_and_a_stricter_policy_exits_1(tmp_path):
    spec = "loopback:fail=crash,every=3"  # 1 of 3 fails: within the default 50%
    assert run_cli(tmp_path, "-b", spec, "--limit", "3") == 0
    strict = tmp_path / "strict"
    assert run_cli(strict, "-b", spec, "--limit", "3", "--max-failures", "0") == 1


def test_policy_counts_statuses_by_name():
    statuses = {"a": ["ok", "ok", "no_answer", "failed"], "b": ["ok", "truncated"], "c": ["failed"]}
    judged = {o.key: o for o in FailurePolicy.parse("50%").judge(statuses)}
    assert (judged["a"].failures, judged["a"].broken) == (2, False)  # every status but ok counts
    assert judged["b"].broken is False and judged["c"].broken is True  # c: no ok utterance at all
    only_failed = {o.key: o for o in FailurePolicy.parse("0", "failed").judge(statuses)}
    assert only_failed["b"].broken is False and only_failed["a"].broken is True
    with pytest.raises(ValueError, match="between 0% and 100%"):
        FailurePolicy.parse("150%")
    with pytest.raises(ValueError, match="cannot count `ok`"):
        FailurePolicy.parse("1", "ok,failed")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # uvicorn, socket gone
def test_a_server_that_dies_after_its_first_turn_exits_1(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("websockets")
    from harness.server.serving import ServerThread, load_backend

    backend = load_backend("loopback")
    with ServerThread(backend) as srv:
        first = backend.open_session

        def open_then_die():
            srv.sock.close()  # the server stops listening: this turn (the remote's warm-up) is its last
            return first()

        backend.open_session = open_then_die
        code = run_cli(tmp_path, "-b", f"remote:url={srv.url},connect_timeout_s=2", "--limit", "3")
    assert code == 1
    ends = [e for e in read_events(tmp_path / "run" / "events.jsonl") if e["e"] == "utt_end"]
    assert [e["status"] for e in ends] == ["failed"] * 3


@pytest.mark.parametrize("spec", ["loopback:delay_ms=nan", "loopback:rtf=inf", "loopback:delay_ms=-inf"])
def test_non_finite_options_are_usage_errors(tmp_path, capsys, spec):
    assert run_cli(tmp_path, "-b", spec, "--limit", "1") == 2
    assert "finite" in capsys.readouterr().err
    assert not (tmp_path / "run" / "run.json").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "abc"])
def test_timeout_must_be_a_finite_positive_number(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exc:
        run_cli(tmp_path, "-b", "loopback", "--timeout", value)
    assert exc.value.code == 2
    assert "--timeout" in capsys.readouterr().err


def test_manifest_lines_with_wrong_types_are_named_and_nothing_runs(tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    lines = [
        {"id": "a", "audio": "a.wav", "sample_rate": "16k"},
        {"id": 7, "audio": "b.wav"},
        {"id": "c", "audio": ["c.wav"], "duration": "long"},
        "just a string",
    ]
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    code = main(["run", "-b", "loopback", "--data", str(manifest), "--out", str(tmp_path / "run"), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "line 1: 'sample_rate' must be a positive integer" in err
    assert "line 2: id must be a string" in err
    assert "line 3: 'audio_path' must be a string" in err and "'duration' must be" in err
    assert "line 4: expected a JSON object" in err
    assert not (tmp_path / "run" / "run.json").exists()  # nothing left marked "running"


def test_run_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for code in ("0 ", "1 ", "2 ", "3 ", "130"):
        assert f"  {code}" in out
    assert "143 SIGTERM" in out
    assert "--max-failures" in out and "--retry-failed" in out


STUCK_PLUGIN = textwrap.dedent(
    """
    import sys
    import threading

    import torch  # imported here, so the worker is inside a torch op, not still importing it, at exit

    import harness.plugins
    from harness.backend import OfflineBackend
    from harness.cli import main
    from harness.hookspecs import hookimpl


    class TorchStuck(OfflineBackend):
        '''Answers with a torch op that never ends and ignores `stop`: its worker is inside torch at exit.'''

        name = "torchstuck"

        def respond(self, audio, emit, stop):
            torch.set_num_threads(1)
            a = torch.randn(1500, 1500) / 40
            print("inside torch", file=sys.stderr, flush=True)
            while True:
                a = torch.tanh(a @ a)


    @hookimpl
    def register_backends(register):
        register(TorchStuck)


    harness.plugins.pm.register(sys.modules[__name__], "torchstuck-test")
    sys.exit(main())
    """
)


def test_a_backend_thread_that_never_returns_does_not_crash_the_process_at_exit(tmp_path):
    """Before the fix the torch case ended in `terminate called without an active exception` (SIGABRT, 134)."""
    pytest.importorskip("torch")
    script = tmp_path / "stuck.py"
    script.write_text(STUCK_PLUGIN, encoding="utf-8")
    out = tmp_path / "run"
    # torch last, so its busy worker shares the CPU only for the last half second before the exit
    cmd = [
        sys.executable,
        str(script),
        "run",
        "-b",
        "loopback:fail=stuck",
        "-b",
        "torchstuck",
        "--limit",
        "1",
    ]
    cmd += [*FAST, "--timeout", "0.5", "--out", str(out)]
    env = {**os.environ, "S2S_BENCH_LOAD_PLUGINS": "", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert "inside torch" in proc.stderr, proc.stderr[-2000:]
    assert "terminate called" not in proc.stderr
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])  # both failed: the failure policy
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "complete"
    kinds = {f["kind"] for s in meta["summary"].values() for f in s["failures"]}
    assert kinds == {"timeout", "hang"}  # torch: its worker timed out; loopback: the call never returned


def test_sigterm_ends_the_run_as_interrupted_with_its_summary(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "harness.cli", "run", "-b", "loopback:delay_ms=250", "--limit", "10"]
    cmd += ["--pacing", "fast", "--out", str(out), "-q"]
    env = {**os.environ, "S2S_BENCH_LOAD_PLUGINS": ""}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    finished = 0
    while time.monotonic() < deadline and finished < 2:
        time.sleep(0.1)
        finished = sum(e["e"] == "utt_end" for e in read_events(out / "events.jsonl"))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (proc.returncode, err[-2000:])
    assert "Traceback" not in err and "--resume" in err
    meta = json.loads((out / "run.json").read_text())
    assert (meta["status"], meta["interrupted_by"]) == ("interrupted", "SIGTERM")
    n = meta["summary"]["loopback:delay_ms=250"]["n"]
    assert 2 <= n < 10 and meta["summary"]["loopback:delay_ms=250"]["n_ok"] == n

    pytest.importorskip("pandas")
    from harness.report.runs import load_run_folder
    from harness.report.tables import summary_frame

    cell = summary_frame([load_run_folder(out)])["answered"][0]
    assert cell.startswith(f"{n}/{n} (100%)") and f", {10 - n} of 10 NOT RUN" in cell and "SIGTERM" in cell
