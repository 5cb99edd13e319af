"""``s2s-bench serve`` as users run it: a subprocess on a free 127.0.0.1 port, answered through the ``remote``
backend, then stopped with SIGTERM (and killed if it does not stop). ``s2s-bench load`` on a tiny ramp."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("websockets")

from harness.registry import create_backend  # noqa: E402
from harness.server.serving import bind_socket  # noqa: E402


def free_port() -> int:
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_serve_command_serves_and_stops(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "serve",
            "--backend",
            "loopback:trim=false",
            "--port",
            str(port),
            "--token",
            "t0k",
            "--log-level",
            "info",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                    info = json.loads(resp.read())
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "the server did not come up in 30 s"
                time.sleep(0.2)
        assert info["auth"] is True and info["backend"]["options"]["trim"] is False
        backend = create_backend(f"remote:url=ws://127.0.0.1:{port}/ws,token=t0k,format=f32")
        backend.load()
        session = backend.open_session()
        x = (0.3 * np.sin(np.arange(4000) / 7)).astype(np.float32)
        session.push(x)
        session.end_input()
        got = []
        for _ in range(400):
            chunk = session.poll(0.05)
            if chunk is not None and chunk.audio is not None:
                got.append(chunk.audio)
            if session.done:
                break
        session.close()
        assert np.array_equal(np.concatenate(got), x)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    # uvicorn shuts down gracefully, then re-raises SIGTERM so that the parent sees how the server ended
    assert code in (0, -signal.SIGTERM), code
    assert "Finished server process" in proc.stdout.read()


def test_serve_refuses_a_busy_port():
    sock = bind_socket("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "harness.cli", "serve", "--backend", "loopback", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
    finally:
        sock.close()
    assert out.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in out.stderr


def test_load_command_reports_a_table(tmp_path):
    from harness.cli import main

    assert (
        main(
            [
                "load",
                "--backend",
                "loopback:delay_ms=20",
                "--levels",
                "1,2",
                "--rounds",
                "1",
                "--pacing",
                "fast",
                "--out",
                str(tmp_path / "load"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "load" / "load.json").read_text())
    (ramp,) = report["backends"]
    assert ramp["backend"] == "loopback:delay_ms=20"
    assert [lv["concurrency"] for lv in ramp["levels"]][:1] == [1]
    assert all(lv["n_ok"] == lv["n"] and lv["errors"] == {} for lv in ramp["levels"])
    assert ramp["capacity"] in (0, 1, 2)
    table = (tmp_path / "load" / "load.md").read_text()
    assert "| 1 | loopback:delay_ms=20 | 1/1 |" in table and "capacity" in table


def test_load_ramps_two_backends_side_by_side_and_prices_a_user_hour(tmp_path):
    """A backend stops at its first level over budget; the other goes on; cost = price / capacity."""
    from harness.cli import main

    args = ["load", "--backend", "loopback:delay_ms=10", "--backend", "loopback:delay_ms=400"]
    args += ["--levels", "1,2,3", "--rounds", "1", "--pacing", "fast", "--budget-ms", "200"]
    args += ["--price-per-hour", "0.49", "--out", str(tmp_path / "load")]
    assert main(args) == 0
    report = json.loads((tmp_path / "load" / "load.json").read_text())
    fast, slow = report["backends"]
    assert [lv["concurrency"] for lv in slow["levels"]] == [1] and slow["capacity"] == 0
    assert "p95 TTFA" in slow["stopped"] and slow["cost_per_user_hour"] is None
    if fast["capacity"]:
        assert fast["cost_per_user_hour"] == pytest.approx(0.49 / fast["capacity"])
    table = (tmp_path / "load" / "load.md").read_text()
    assert f"${0.49 / fast['capacity']:.4f} per user-hour" in table or fast["capacity"] == 0


def test_keep_going_measures_past_the_first_level_out_of_budget_until_one_is_overloaded(tmp_path):
    from harness.cli import main

    args = [
        "load",
        "--backend",
        "loopback:delay_ms=400",
        "--backend",
        "loopback:delay_ms=1000",
        "--keep-going",
    ]
    args += ["--levels", "1,2,3", "--rounds", "1", "--pacing", "fast", "--budget-ms", "200"]
    assert main([*args, "--out", str(tmp_path / "load")]) == 0
    slow, hopeless = json.loads((tmp_path / "load" / "load.json").read_text())["backends"]
    assert [lv["concurrency"] for lv in slow["levels"]] == [1, 2, 3] and slow["capacity"] == 0
    assert slow["stopped"] is None and "at 1 users" in slow["broke"]  # over budget, not 4x over: measured on
    assert [lv["concurrency"] for lv in hopeless["levels"]] == [1] and "overloaded" in hopeless["stopped"]
    table = (tmp_path / "load" / "load.md").read_text()
    assert "first out of budget: p95 TTFA" in table and "measured on to 3 users" in table


def test_passes_ramp_again_and_report_the_median_capacity_with_its_range(tmp_path, capsys):
    """Two backends, three passes over the same servers: every pass measured and kept, capacity = the median."""
    from harness.cli import main

    args = [
        "load",
        "--backend",
        "loopback:delay_ms=10",
        "--backend",
        "loopback:delay_ms=400",
        "--passes",
        "3",
    ]
    args += ["--levels", "1,2", "--rounds", "1", "--pacing", "fast", "--budget-ms", "200"]
    args += ["--price-per-hour", "0.49", "--out", str(tmp_path / "load")]
    assert main(args) == 0
    report = json.loads((tmp_path / "load" / "load.json").read_text())
    assert report["passes"] == 3
    fast, slow = report["backends"]
    assert len(fast["passes"]) == 3 == len(slow["passes"])
    assert all([lv["concurrency"] for lv in p["levels"]] == [1] for p in slow["passes"])  # stops each pass
    assert slow["capacities"] == [0, 0, 0] and slow["capacity"] == 0
    assert fast["capacity"] == sorted(fast["capacities"])[1]
    if fast["capacity"]:
        assert fast["cost_per_user_hour"] == pytest.approx(0.49 / fast["capacity"])
    assert fast["levels"] is None  # several passes: the levels are per pass
    for b, n in ((0, 1), (1, 1)):
        for p in (1, 2, 3):
            assert (tmp_path / "load" / f"b{b}-p{p}-c{n:03d}").is_dir()
    table = (tmp_path / "load" / "load.md").read_text()
    assert "| pass |" in table and "| 1 | loopback:delay_ms=400 | 3 |" in table
    caps = ", ".join(map(str, fast["capacities"]))
    assert f"(median of 3 passes: {caps};" in table
    assert "stopped in pass 3: p95 TTFA" in table
    assert main([*args[:-1], str(tmp_path / "bad"), "--passes", "0"]) == 2
    assert "passes >= 1" in capsys.readouterr().err


def test_a_pass_cut_short_is_shown_but_not_counted_in_the_median():
    from harness.server.capacity import BackendCapacity, RampPass

    ramp = BackendCapacity(
        "x", passes=[RampPass(capacity=24), RampPass(capacity=8, cut=True), RampPass(capacity=28)]
    )
    assert ramp.capacity == 24 and ramp.capacities == [24, 8, 28]  # median of 24 and 28 (lower), 8 left out
    assert (
        BackendCapacity("y", passes=[RampPass(capacity=8, cut=True)]).capacity == 8
    )  # nothing whole: all count
    assert BackendCapacity("z").capacity == 0


def test_a_time_budget_cuts_every_pass_and_says_so(tmp_path):
    from harness.server.capacity import run_capacity

    report = run_capacity(
        ["loopback"], levels=(1, 2), rounds=1, pacing="fast", max_total_s=0.0, passes=2, out=tmp_path / "l"
    )
    (ramp,) = report.backends
    assert [p.cut for p in ramp.passes] == [True, True] and ramp.levels == [] and ramp.capacity == 0
    assert all("time budget" in p.stopped for p in ramp.passes)
    assert "0 (cut short), 0 (cut short); range 0-0)" in (tmp_path / "l" / "load.md").read_text()


def test_load_serves_each_backend_in_its_own_process_or_on_request_in_a_thread(tmp_path):
    from harness.cli import main

    common = ["--levels", "1", "--rounds", "1", "--pacing", "fast"]
    for server, says in (
        ("process", "in its own process"),
        ("thread", "in a thread of the measuring process"),
    ):
        out = tmp_path / server
        assert main(["load", "--backend", "loopback", *common, "--server", server, "--out", str(out)]) == 0
        report = json.loads((out / "load.json").read_text())
        assert report["server"] == server and report["backends"][0]["levels"][0]["n_ok"] == 1
        assert says in (out / "load.md").read_text()
    assert (tmp_path / "process" / "b0-server.log").is_file()  # the served process's own log


def test_load_names_a_backend_whose_server_cannot_start(tmp_path, capsys):
    from harness.cli import main

    bad = "custom:s2s=" + str(tmp_path / "no-such-checkpoint")
    code = main(["load", "--backend", bad, "--levels", "1", "--rounds", "1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "exited with code" in err and "checkpoint files not found" in err


def test_load_against_refuses_what_it_cannot_do(tmp_path, capsys):
    from harness.cli import main

    common = ["load", "--backend", "loopback", "--levels", "1", "--rounds", "1", "--out", str(tmp_path / "o")]
    assert main([*common, "--against", "HEAD", "--server", "thread"]) == 2
    assert "--server process" in capsys.readouterr().err
    assert main(["load", "--url", "ws://127.0.0.1:9/ws", "--against", "--out", str(tmp_path / "u")]) == 2
    assert "cannot measure --url" in capsys.readouterr().err
    assert main([*common, "--against", "no-such-revision-here"]) == 2
    assert "no-such-revision-here" in capsys.readouterr().err
