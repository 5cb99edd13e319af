"""Run folders under hostile conditions: ids that are paths, folders that are not runs, cut UTF-8 lines, retries,
a full or read-only disk. Nothing outside the run folder is written, nothing measured is lost, and the run says
what happened to it."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.data import Utterance
from harness.events import read_events
from harness.results import load_run
from harness.runner import RunError, run_benchmark

FAST = ["--pacing", "fast", "--warmup", "0", "-q"]


def clips(ids, seconds=0.3, sr=16000):
    rng = np.random.default_rng(1)
    return [
        Utterance(
            id=i,
            sample_rate=sr,
            duration_s=seconds,
            audio_array=(0.2 * rng.standard_normal(int(seconds * sr))).astype(np.float32),
        )
        for i in ids
    ]


def write_manifest(folder: Path, ids: list[str]) -> Path:
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    tone = (0.2 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16000)).astype(np.float32)
    sf.write(folder / "a.wav", tone, 16000)
    lines = [json.dumps({"id": i, "audio": "a.wav"}) for i in ids]
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "manifest.jsonl"


@pytest.mark.parametrize("bad", ["../../../escaped", "/tmp/s2s-bench-absolute-id", "a/b", "..", ""])
def test_ids_that_are_paths_are_refused_by_run_and_by_data_check(tmp_path, capsys, bad):
    manifest = write_manifest(tmp_path / "data", ["fine", bad])
    out = tmp_path / "deep" / "er" / "run"
    code = main(["run", "-b", "loopback", "--data", str(manifest), "--out", str(out), *FAST])
    written = [p for p in tmp_path.rglob("*.wav") if p.name != "a.wav"] + list(
        Path("/tmp").glob("s2s-bench-abs*")
    )
    for p in written:  # (the old code wrote deep/er/escaped.wav and /tmp/s2s-bench-absolute-id.wav)
        p.unlink()
    assert code == 2 and written == []
    assert "line 2" in capsys.readouterr().err
    assert not out.exists()
    assert main(["data", "check", str(manifest)]) == 1
    assert "manifest.jsonl:2" in capsys.readouterr().out


def test_duplicate_ids_are_refused(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "data", ["x", "y", "x"])
    assert main(["run", "-b", "loopback", "--data", str(manifest), "--out", str(tmp_path / "r"), *FAST]) == 2
    assert "line 3: id 'x' is already used on line 1" in capsys.readouterr().err
    assert main(["data", "check", str(manifest)]) == 1
    with pytest.raises(RunError, match="used twice"):  # utterances handed over directly are checked too
        run_benchmark(["loopback"], utterances=clips(["x", "x"]), out=tmp_path / "r2", progress=False)


def test_out_that_is_not_a_run_is_never_overwritten(tmp_path, capsys):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("precious", encoding="utf-8")
    args = ["run", "-b", "loopback", "--data", "synthetic-clips", "--limit", "1", *FAST]
    assert main([*args, "--out", str(user)]) == 2
    assert "not empty and holds no run" in capsys.readouterr().err
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "run.json").write_text('{"schema": "someone-else/3", "keep": true}', encoding="utf-8")
    assert main([*args, "--out", str(foreign)]) == 2
    assert "not an s2s-bench run" in capsys.readouterr().err
    assert json.loads((foreign / "run.json").read_text())["keep"] is True

    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    assert main([*args, "--out", str(a_file)]) == 2
    assert main([*args, "--out", str(a_file / "run")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert a_file.read_text() == "x"


def test_a_line_cut_inside_a_telugu_character_is_skipped_by_resume_and_rescore(tmp_path, capsys):
    utts = clips(["తెలుగు-1", "తెలుగు-2", "తెలుగు-3"])
    out = tmp_path / "run"
    run_benchmark(["loopback"], utterances=utts, out=out, pacing="fast", progress=False)
    events = out / "events.jsonl"
    data = events.read_bytes()
    last = data.rindex(b"\n", 0, len(data) - 1) + 1  # the last line: utt_end of the third utterance
    cut = data.index("తె".encode(), last) + 1  # inside the first byte sequence of a Telugu letter
    events.write_bytes(data[:cut])
    assert [e["u"] for e in read_events(events) if e["e"] == "utt_end"] == ["తెలుగు-1", "తెలుగు-2"]
    assert main(["rescore", str(out)]) == 0
    run_benchmark(["loopback"], utterances=utts, out=out, pacing="fast", progress=False, resume=True)
    s = load_run(out).summary["loopback"]
    assert (s["n"], s["n_ok"]) == (3, 3)


def test_retry_failed_redoes_load_failures_from_a_server_that_was_down(tmp_path, monkeypatch, capsys):
    from backends.loopback import LoopbackBackend

    def down(self):
        raise ConnectionRefusedError("server down")

    monkeypatch.setattr(LoopbackBackend, "load", down)
    out = tmp_path / "run"
    args = ["run", "-b", "loopback", "--data", "synthetic-clips", "--limit", "3", "--out", str(out), *FAST]
    assert main(args) == 1
    monkeypatch.undo()
    assert main([*args, "--resume"]) == 1  # plain --resume keeps finished (failed) utterances
    assert main([*args, "--retry-failed", "hang"]) == 1  # load failures are not hangs
    assert main([*args, "--retry-failed", "load"]) == 0
    r = load_run(out)
    assert r.summary["loopback"]["n_ok"] == 3
    attempts = {e["u"]: e["a"] for e in r.events if e["e"] == "utt_end" and e["status"] == "ok"}
    assert set(attempts.values()) == {2}


def _disk_full_on_second_wav(monkeypatch):
    import soundfile as sf

    real, calls = sf.write, []

    def write(file, *args, **kw):
        calls.append(file)
        if len(calls) >= 2:
            Path(file).write_bytes(b"RIFF")  # what a full disk leaves: a file cut short
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real(file, *args, **kw)

    monkeypatch.setattr(sf, "write", write)


def test_a_full_disk_stops_the_run_cleanly_and_resume_finishes_it(tmp_path, monkeypatch, capsys):
    _disk_full_on_second_wav(monkeypatch)
    out = tmp_path / "run"
    args = ["run", "-b", "loopback", "--data", "synthetic-clips", "--limit", "4", "--out", str(out), *FAST]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "the disk is full" in err and "--resume" in err and "Traceback" not in err
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed" and "the disk is full" in meta["error"]
    leftovers = [p.name for p in out.rglob("*") if p.suffix in (".partial", ".tmp") or p.stat().st_size == 0]
    assert leftovers == []
    assert meta["summary"]["loopback"]["n_ok"] == 1  # the utterance saved before the disk filled is kept
    monkeypatch.undo()
    assert main([*args, "--resume"]) == 0  # the refused output is redone: it was the harness's failure
    s = load_run(out).summary["loopback"]
    assert (s["n"], s["n_ok"]) == (4, 4)


def _mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
        )
    except OSError:
        pytest.skip("no mount command")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}")


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 192 KiB file system (tmpfs), where the machine allows mounting one."""
    disk = tmp_path / "tiny"
    _mount_tmpfs(disk, "size=192k")
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


def test_a_really_full_disk_leaves_no_partial_files_and_says_failed(tiny_disk, capsys):
    out = tiny_disk / "run"
    code = main(["run", "-b", "loopback", "--data", "synthetic-clips", "--out", str(out), *FAST])
    assert code == 3
    assert "Traceback" not in capsys.readouterr().err
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed" and meta["error"]
    names = [p.name for p in out.rglob("*")]
    assert not [n for n in names if n.endswith((".partial", ".tmp"))], names
    assert not [p for p in out.rglob("*.wav") if p.stat().st_size < 100]


def test_a_read_only_out_is_a_usage_error(tmp_path, capsys):
    ro = tmp_path / "ro"
    if os.geteuid() == 0:
        _mount_tmpfs(ro, "ro,size=64k")
    else:
        ro.mkdir()
        ro.chmod(0o500)
    try:
        code = main(["run", "-b", "loopback", "--data", "synthetic-clips", "--out", str(ro / "run"), *FAST])
        assert code == 2
        assert "cannot be written" in capsys.readouterr().err
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(ro)], check=False)
        else:
            ro.chmod(0o700)
