"""The Ray executor on a local Ray cluster that this module starts (127.0.0.1 only, 2 CPUs, a small object store):
shards measured by Ray workers and merged, a worker killed with SIGKILL in the middle of its shard, scoring spread
over workers. One cluster for the module: Ray's start-up takes seconds."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.events import read_events
from harness.executors import RayOptions, parse_resources
from harness.latency import final_attempts
from tests.shard_helpers import write_manifest

LOOPBACK_ADDRESSES = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A Ray head on 127.0.0.1: 2 CPUs, an 80 MiB object store, no dashboard, no usage statistics sent."""
    ray = pytest.importorskip(
        "ray", reason="the Ray executor's tests need the `ray` extra (make install has it)"
    )
    import ray._private.services as services

    saved = {k: os.environ.get(k) for k in ("RAY_USAGE_STATS_ENABLED",)}
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Ray replaces 127.0.0.1 with the machine's reachable address on purpose (so that other nodes can join); a
    # test cluster must listen on the loopback interface and nowhere else.
    resolve = services.resolve_ip_for_localhost
    services.resolve_ip_for_localhost = lambda host: host
    ray.init(
        num_cpus=2,
        object_store_memory=80 * 2**20,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
        configure_logging=False,
        log_to_driver=False,
    )
    try:
        assert [n["NodeManagerAddress"] for n in ray.nodes()] == ["127.0.0.1"]
        _assert_listening_on_loopback_only()
        yield ray
    finally:
        ray.shutdown()
        services.resolve_ip_for_localhost = resolve
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _assert_listening_on_loopback_only() -> None:
    """Every TCP port a Ray process listens on is on the loopback interface (else stop: never expose one)."""
    import psutil  # a dependency of Ray

    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return
    ray_pids = set()
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        text = " ".join([proc.info["name"] or "", *(proc.info["cmdline"] or [])])
        if any(word in text for word in ("raylet", "gcs_server", "ray::", "ray/_private", "default_worker")):
            ray_pids.add(proc.info["pid"])
    ray_pids.add(os.getpid())
    exposed = [
        c.laddr
        for c in conns
        if c.status == psutil.CONN_LISTEN and c.pid in ray_pids and c.laddr.ip not in LOOPBACK_ADDRESSES
    ]
    assert not exposed, f"the test's Ray cluster listens beyond 127.0.0.1: {exposed}"


def test_shards_on_ray_survive_a_killed_worker_and_end_in_one_merged_run(ray_cluster, tmp_path):
    from harness.executors.ray_executor import run_on_ray

    manifest = write_manifest(tmp_path / "data", 8)
    out = tmp_path / "run"
    victim_key = "loopback:delay_ms=300"
    kill: dict = {}
    received: dict[str, int] = {}

    def on_message(shard, msg):
        received[shard.label] = received.get(shard.label, 0) + 1
        if kill or shard.key != victim_key or shard.index != 0 or msg["kind"] != "events":
            return
        if any('"utt_end"' in line for line in msg["lines"]):  # one utterance done, the next one in flight
            kill["pid"] = shard.workers[-1]["pid"]
            kill["log"] = (shard.folder / "events.jsonl").read_bytes()
            os.kill(kill["pid"], signal.SIGKILL)

    got = run_on_ray(
        ["loopback:delay_ms=20", victim_key],
        str(manifest),
        options=RayOptions(shards=2, retries=2),
        out=out,
        pacing="realtime",
        warmup=0,
        vad="energy",
        progress=False,
        on_message=on_message,
    )
    assert got == out and kill, "the worker was never killed"
    assert main(["rescore", str(out), "--check"]) == 0
    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert meta["status"] == "complete" and {b["key"] for b in meta["backends"]} == {
        "loopback:delay_ms=20",
        victim_key,
    }
    finals = final_attempts(read_events(out / "events.jsonl"))
    assert len(finals) == 16
    for (b, u), evs in finals.items():
        assert next(e for e in evs if e["e"] == "utt_end")["status"] == "ok", (b, u)
        assert (out / "outputs" / b.replace(":", "_") / f"{u}.wav").exists()

    # the killed shard: resumed on a new worker, and nothing that arrived before the kill was lost or redone
    folder = out / "shards" / victim_key.replace(":", "_") / "0-of-2"
    shard_meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    first, second = shard_meta["executor"]["workers"]
    assert first["pid"] == kill["pid"] and first["end"].startswith("died: WorkerCrashedError")
    assert second["pid"] != kill["pid"] and second["end"] == "finished"
    log = (folder / "events.jsonl").read_bytes()
    assert log.startswith(kill["log"])  # the driver's copy only grew
    before = [json.loads(line) for line in kill["log"].splitlines()]
    done_before = {e["u"] for e in before if e["e"] == "utt_end"}
    after = [json.loads(line) for line in log.splitlines()]
    assert done_before and all(
        sum(e["e"] == "utt_end" and e["u"] == u for e in after) == 1 for u in done_before
    )  # finished utterances were kept, not measured again
    redone = {e["u"] for e in after if e.get("a", 1) == 2}
    assert (
        redone <= set(shard_meta["shard"]["ids"]) - done_before
    )  # only the one in flight got a second attempt
    assert sum(e["e"] == "run" for e in after) == 2  # the resume's run line names the second worker's machine
    merged_shard = next(s for s in meta["shards"] if s["backends"] == [victim_key] and s["index"] == 0)
    assert [w["pid"] for w in merged_shard["executor"]["workers"]] == [first["pid"], second["pid"]]


def test_cli_run_and_score_on_ray_match_local_scoring(ray_cluster, tmp_path, capsys):
    from harness.metrics.scoring import score_run

    manifest = write_manifest(tmp_path / "data", 5)
    out = tmp_path / "run"
    args = ["run", "-b", "loopback:delay_ms=10", "--data", str(manifest), "--pacing", "fast", "--warmup", "0"]
    assert (
        main([*args, "--vad", "energy", "-q", "--executor", "ray", "--shards", "2", "--out", str(out)]) == 0
    )
    assert "loopback:delay_ms=10" in capsys.readouterr().out
    assert sorted(s["index"] for s in json.loads((out / "run.json").read_text())["shards"]) == [0, 1]
    local = Path(shutil.copytree(out, tmp_path / "local"))
    score = ["score", "run", "--metrics", "si_sdr", "--workers", "1"]
    assert (
        main([*score, str(out), "--executor", "ray", "--shards", "2", "--ray-resources", "score:num_cpus=1"])
        == 0
    )
    score_run(local, metrics=["si_sdr"], workers=1)

    def records(folder):
        lines = (folder / "scores.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    assert records(out) == records(local) and len(records(out)) == 5
    on_ray, here = (json.loads((f / "run.json").read_text()) for f in (out, local))
    assert (
        on_ray["summary"]["loopback:delay_ms=10"]["metrics"]
        == here["summary"]["loopback:delay_ms=10"]["metrics"]
    )
    log = on_ray["scoring_log"][-1]
    assert log["executor"]["kind"] == "ray" and len(log["executor"]["workers"]) == 2


# ------------------------------------------------------------------------------------------------ no cluster


class WorkerCrashedError(Exception):
    """Named as Ray's: what a killed worker raises in the driver."""


class RayTaskError(Exception):
    """Named as Ray's: the task's own exception, wrapped."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def test_a_dead_worker_is_resubmitted_until_the_retries_run_out_and_a_task_error_is_not(tmp_path):
    from harness.executors.ray_executor import _END, _ended, _Shard

    shard = _Shard("loopback", "loopback", 0, 2, tmp_path / "s", {"num_cpus": 1}, 3)
    submitted = []

    def submit(s):
        submitted.append(s)
        s.workers.append({"attempt": len(s.workers) + 1})

    shard.workers.append({"attempt": 1, "pid": 11, "hostname": "n1"})
    options = RayOptions(retries=2)
    assert _ended(shard, WorkerCrashedError("gone"), options, submit) == 0 and len(submitted) == 1
    assert _ended(shard, WorkerCrashedError("gone"), options, submit) == 0 and len(submitted) == 2
    assert _ended(shard, WorkerCrashedError("gone"), options, submit) == 1 and len(submitted) == 2
    assert "died 3 times" in shard.error and not shard.done
    other = _Shard("loopback", "loopback", 1, 2, tmp_path / "t", {"num_cpus": 1}, 3, workers=[{"attempt": 1}])
    assert _ended(other, RayTaskError(FileNotFoundError("no /data here")), options, submit) == 1
    assert other.error == "FileNotFoundError: no /data here" and len(submitted) == 2
    done = _Shard("loopback", "loopback", 1, 2, tmp_path / "u", {"num_cpus": 1}, 3, workers=[{"attempt": 1}])
    assert _ended(done, _END, options, submit) == 1 and done.done and done.workers[0]["end"] == "finished"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--executor", "spark"], "Expected --executor to be local, ray or ray:ADDRESS"),
        (["--executor", "ray", "--shard", "0/2"], "--shard is for the local executor"),
        (["--shards", "2"], "--shards is for --executor ray"),
        (["--executor", "ray", "--ray-resources", "custom"], "Expected --ray-resources BACKEND:KEY=VALUE"),
        (["--executor", "ray", "--ray-resources", "custom:num_gpus=x"], "num_gpus='x' is not a number"),
    ],
)
def test_executor_options_are_checked_before_anything_runs(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert main(["run", "-b", "loopback", "--out", str(out), "-q", *argv]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_resources_per_backend():
    got = parse_resources(
        ["custom:num_gpus=1,num_cpus=4,memory=16G,accelerator_type_h200=1", "loopback:num_cpus=0.5"]
    )
    assert got["custom"] == {
        "num_gpus": 1.0,
        "num_cpus": 4.0,
        "memory": 16 * 2**30,
        "resources": {"accelerator_type_h200": 1.0},
    }
    assert RayOptions(resources=got).resources_for("custom:preset=base", "custom")["num_gpus"] == 1.0
    assert RayOptions(resources=got).resources_for("seamless", "seamless") == {"num_cpus": 1}


def test_help_does_not_import_ray():
    code = "import sys, harness.cli; harness.cli.build_parser(); print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
