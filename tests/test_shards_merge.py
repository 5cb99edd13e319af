"""Sharded runs without Ray: the partition, ``run --shard I/N`` and ``s2s-bench merge`` on loopback shards run the
way a SLURM array runs them (one process per shard, the same command line), and what merge refuses."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.events import read_events
from harness.executors.merge import MergeError, merge_runs
from harness.executors.shards import SHARD_METHOD, Shard, ShardError, assign, select, sizes
from harness.gate import Rule, compare
from harness.latency import final_attempts, summarize, utterance_latencies
from harness.report.runs import load_run_folder
from tests.shard_helpers import write_manifest

BACKENDS = ["-b", "loopback:delay_ms=20", "-b", "loopback:delay_ms=40"]
FAST = ["--pacing", "fast", "--warmup", "0", "--vad", "energy", "-q"]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """Three shards of a 7-utterance manifest, two backends each, as three separate `run --shard` commands."""
    root = tmp_path_factory.mktemp("sharded")
    manifest = write_manifest(root / "data", 7)
    folders = []
    for i in range(3):
        out = root / f"shard{i}"
        code = main(
            ["run", *BACKENDS, "--data", str(manifest), *FAST, "--shard", f"{i}/3", "--out", str(out)]
        )
        assert code == 0
        folders.append(out)
    return root, manifest, folders


def copy_shards(sharded, tmp_path) -> list[Path]:
    return [Path(shutil.copytree(f, tmp_path / f.name)) for f in sharded[2]]


# ------------------------------------------------------------------------------------------------ partition


def test_partition_is_the_same_in_any_order_balanced_disjoint_and_complete():
    ids = [f"utt-{i}" for i in range(23)] + ["తెలుగు-1", "a/b?c"]
    shuffled = ids[:]
    random.Random(7).shuffle(shuffled)
    for count in (1, 2, 3, 7, 25):
        where = assign(ids, count)
        assert where == assign(shuffled, count)  # no dependence on the order the data lists them in
        per = [sorted(u for u in ids if where[u] == i) for i in range(count)]
        assert sorted(len(p) for p in per) == sorted(sizes(len(ids), count))
        assert max(len(p) for p in per) - min(len(p) for p in per) <= 1
        assert sorted(u for p in per for u in p) == sorted(ids)

    # select keeps the data's order inside a shard and records what merge needs
    class U:
        def __init__(self, uid):
            self.id = uid

    chosen, record = select([U(u) for u in ids], "1/3")
    assert [u.id for u in chosen] == [u for u in ids if assign(ids, 3)[u] == 1]
    assert record["method"] == SHARD_METHOD and record["sizes"] == sizes(len(ids), 3)
    assert record["ids"] == [u.id for u in chosen] and record["n"] == len(chosen)


@pytest.mark.parametrize("text", ["3/3", "-1/3", "1of3", "0/0", "a/b"])
def test_a_shard_that_cannot_be_is_refused_with_the_spelling(text):
    with pytest.raises(ShardError, match=r"I/N|0 <= I|N >= 1"):
        Shard.parse(text)


def test_run_refuses_more_shards_than_utterances_and_a_bad_shard_before_measuring(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "data", 3)
    out = tmp_path / "run"
    assert main(["run", *BACKENDS, "--data", str(manifest), *FAST, "--shard", "0/5", "--out", str(out)]) == 2
    assert "only 3 utterance(s)" in capsys.readouterr().err and not out.exists()
    assert main(["run", *BACKENDS, "--data", str(manifest), *FAST, "--shard", "3/3", "--out", str(out)]) == 2
    assert "0 <= I < N=3" in capsys.readouterr().err and not out.exists()


# ------------------------------------------------------------------------------------------------ a shard


def test_a_shard_measures_its_part_and_records_the_whole_selection(sharded):
    _, manifest, folders = sharded
    metas = [json.loads((f / "run.json").read_text(encoding="utf-8")) for f in folders]
    ids = [m["shard"]["ids"] for m in metas]
    assert sorted(u for part in ids for u in part) == [f"utt-{i:02d}" for i in range(7)]
    assert [len(p) for p in ids] == sizes(7, 3) == metas[0]["shard"]["sizes"]
    assert all(m["data"] == metas[0]["data"] and m["data"]["n"] == 7 for m in metas)  # the whole selection
    for m, folder in zip(metas, folders, strict=True):
        done = {u for (_b, u) in final_attempts(read_events(folder / "events.jsonl"))}
        assert done == set(m["shard"]["ids"])
        assert all(m["summary"][k]["n"] == len(m["shard"]["ids"]) for k in m["summary"])
        run_line = next(e for e in read_events(folder / "events.jsonl") if e["e"] == "run")
        assert run_line["machine"]["cpu"] == m["machine"]["cpu"]  # each start names its machine


def test_resuming_a_shard_as_another_shard_is_refused(sharded, tmp_path, capsys):
    root, manifest, _ = sharded
    [folder] = [Path(shutil.copytree(sharded[2][0], tmp_path / "s0"))]
    args = [
        "run",
        *BACKENDS,
        "--data",
        str(manifest),
        *FAST,
        "--shard",
        "1/3",
        "--out",
        str(folder),
        "--resume",
    ]
    assert main(args) == 2
    assert "shard differ (the run has 0/3, now 1/3)" in capsys.readouterr().err


def test_a_single_shard_is_not_comparable_with_the_whole_run(sharded):
    _, _, folders = sharded
    base, cand = load_run_folder(folders[0]), load_run_folder(folders[1])
    verdicts = compare(base, cand, [Rule.parse("ttfa.p50:+10%")])
    assert {v.verdict for v in verdicts} == {"x"}
    assert "shard 0/3" in verdicts[0].note and "merge the shards first" in verdicts[0].note


# ------------------------------------------------------------------------------------------------ merge


def test_merge_makes_one_rescorable_run_with_every_shard_as_measured(sharded, tmp_path, capsys):
    _, _, folders = sharded
    out = tmp_path / "merged"
    assert main(["merge", *(str(f) for f in reversed(folders)), "--out", str(out)]) == 0
    assert "merged 3 shard(s)" in capsys.readouterr().out
    assert main(["rescore", str(out), "--check"]) == 0  # summary, WAVs, onsets, speech ends: all consistent
    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    events = read_events(out / "events.jsonl")
    keys = ["loopback:delay_ms=20", "loopback:delay_ms=40"]
    assert [b["key"] for b in meta["backends"]] == keys
    assert set(final_attempts(events)) == {(k, f"utt-{i:02d}") for k in keys for i in range(7)}
    for k in keys:
        for i in range(7):
            assert (out / "outputs" / k.replace(":", "_") / f"utt-{i:02d}.wav").exists()
    # every per-utterance latency is exactly what its shard measured (the clocks are moved, not the differences)
    merged = {(r.backend, r.utt): r for r in utterance_latencies(events)}
    busy = {k: 0.0 for k in keys}
    for folder in folders:
        shard_events = read_events(folder / "events.jsonl")
        for r in utterance_latencies(shard_events):
            m = merged[(r.backend, r.utt)]
            assert (m.ttfa_ms, m.ttfb_ms, m.rtf, m.status) == (r.ttfa_ms, r.ttfb_ms, r.rtf, r.status)
        for k, s in summarize(shard_events).items():
            busy[k] += s["busy_s"]
    for k in keys:  # rtfx divides by the shards' busy time added up, never by an overlap of unrelated clocks
        assert meta["summary"][k]["busy_s"] == pytest.approx(busy[k], rel=1e-9)
        assert meta["summary"][k]["n"] == 7
    # each shard is on record: where it came from and the machine it ran on
    assert sorted(s["index"] for s in meta["shards"]) == [0, 1, 2]
    assert all(s["machines"][0]["cpu"] == meta["machine"]["cpu"] and s["source"] for s in meta["shards"])
    assert meta["data"]["n"] == 7 and "shard" not in meta and meta["status"] == "complete"
    assert [e for e in events if e["e"] == "shard"][0]["count"] == 3
    # a merged run of one machine class gates like any run
    verdicts = compare(load_run_folder(out), load_run_folder(out), [Rule.parse("ttfa.p50:+10%")])
    assert {v.verdict for v in verdicts} == {"same"}


def test_merge_refuses_a_missing_shard_and_names_it(sharded, tmp_path, capsys):
    _, _, folders = sharded
    out = tmp_path / "merged"
    assert main(["merge", str(folders[0]), str(folders[2]), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "backends loopback:delay_ms=20, loopback:delay_ms=40: shard(s) 1/3 missing (have 0/3, 2/3)" in err
    assert not out.exists()


def test_merge_refuses_a_shard_given_twice_and_shards_of_other_runs(sharded, tmp_path):
    _, manifest, folders = sharded
    copy = Path(shutil.copytree(folders[1], tmp_path / "copy"))
    with pytest.raises(MergeError, match=r"shard 1/3 is given 2 times"):
        merge_runs([*folders, copy], tmp_path / "m1")
    other = tmp_path / "other"  # the same shard of a run measured with other settings
    args = ["run", *BACKENDS, "--data", str(manifest), *FAST, "--chunk-ms", "40", "--shard", "1/3"]
    assert main([*args, "--out", str(other)]) == 0
    with pytest.raises(MergeError) as info:
        merge_runs([folders[0], other, folders[2]], tmp_path / "m2")
    assert "differ in settings: chunk_ms 20.0 vs 40.0" in str(info.value)
    two = tmp_path / "two"  # shard 0 of a partition into 2
    assert main(["run", *BACKENDS, "--data", str(manifest), *FAST, "--shard", "0/2", "--out", str(two)]) == 0
    with pytest.raises(MergeError, match=r"different partitions \(N=2, N=3\)"):
        merge_runs([two, *folders[1:]], tmp_path / "m3")
    assert not any((tmp_path / m).exists() for m in ("m1", "m2", "m3"))


def test_merge_refuses_an_unfinished_shard_and_says_how_to_finish_it(sharded, tmp_path):
    folders = copy_shards(sharded, tmp_path)
    events_path = folders[1] / "events.jsonl"
    lines = events_path.read_text(encoding="utf-8").splitlines()
    last_end = max(i for i, line in enumerate(lines) if '"utt_end"' in line)
    cut = json.loads(lines[last_end])
    events_path.write_text("\n".join(lines[:last_end]) + "\n", encoding="utf-8")  # killed before its last end
    meta = json.loads((folders[1] / "run.json").read_text(encoding="utf-8"))
    meta["status"] = "running"
    (folders[1] / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(MergeError) as info:
        merge_runs(folders, tmp_path / "m")
    text = str(info.value)
    assert f"is running, with utterances not finished: {cut['b']}: 1 ({cut['u']})" in text
    assert f"--shard 1/3 --resume --out {folders[1]}" in text


def test_merge_refuses_a_run_that_is_not_a_shard_and_an_out_that_holds_something(sharded, tmp_path):
    _, manifest, folders = sharded
    whole = tmp_path / "whole"
    assert main(["run", *BACKENDS, "--data", str(manifest), *FAST, "--out", str(whole)]) == 0
    with pytest.raises(MergeError, match=r"was not run with --shard I/N"):
        merge_runs([whole, *folders], tmp_path / "m")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(MergeError, match=r"holds other files \(notes.txt\)"):
        merge_runs(folders, busy)
    assert (busy / "notes.txt").read_text(encoding="utf-8") == "mine" and len(list(busy.iterdir())) == 1
    with pytest.raises(MergeError, match=r"already holds a run"):
        merge_runs(folders, whole)


def test_mixed_machine_classes_are_no_latency_baseline_but_quality_may_compare(sharded, tmp_path):
    """Shard 2 as a machine of another class writes it (its run.json and its run line); a quality metric is
    scored in every shard and merged."""
    from harness.metrics.scoring import score_run

    folders = copy_shards(sharded, tmp_path)
    for f in folders:
        score_run(f, metrics=["si_sdr"], workers=1)
    elsewhere = {"cpu": "NVIDIA Grace", "cpu_count": 72, "gpu": "NVIDIA GH200", "hostname": "gpu-node-7"}
    meta = json.loads((folders[2] / "run.json").read_text(encoding="utf-8"))
    meta["machine"].update(elsewhere)
    (folders[2] / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    events = read_events(folders[2] / "events.jsonl")
    # another machine's monotonic clock: here, one that started where shard 0's did, so the two overlap
    shift = next(e["t"] for e in events if "t" in e) - next(
        e["t"] for e in read_events(folders[0] / "events.jsonl") if "t" in e
    )
    for ev in events:
        if "t" in ev:
            ev["t"] -= shift
        if ev["e"] == "run":
            ev["machine"].update(elsewhere)
    (folders[2] / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    out, notes = merge_runs(folders, tmp_path / "mixed")
    merged = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert merged["machine"]["mixed"] is True and len(merged["machine"]["classes"]) == 2
    for key, s in merged["summary"].items():  # busy time adds up although the clocks overlapped
        shard_busy = [summarize(read_events(f / "events.jsonl"))[key]["busy_s"] for f in folders]
        assert s["busy_s"] == pytest.approx(sum(shard_busy), rel=1e-9)
    assert any("2 machine classes" in n for n in notes)
    # the quality metric covers every utterance and equals scoring the merged folder afresh
    agg = merged["summary"]["loopback:delay_ms=20"]["metrics"]["si_sdr"]
    assert agg["n"] + agg["n_na"] == 7
    fresh = score_run(Path(shutil.copytree(out, tmp_path / "rescored")), metrics=["si_sdr"], workers=1)
    assert fresh["loopback:delay_ms=20"]["si_sdr"] == agg
    run = load_run_folder(out)
    single = load_run_folder(folders[0])
    for base, cand in ((single, run), (run, single), (run, run)):
        for allow in (False, True):
            latency = compare(base, cand, [Rule.parse("ttfa.p50:+10%")], allow_machine_change=allow)
            assert {v.verdict for v in latency} == {"x"}
            assert "shards ran on 2 machine classes" in latency[0].note
    quality = compare(run, run, [Rule.parse("si_sdr:-1")])
    assert {v.verdict for v in quality} == {"same"}


def test_a_metric_scored_in_only_some_shards_is_left_out_with_a_note(sharded, tmp_path):
    from harness.metrics.scoring import score_run

    folders = copy_shards(sharded, tmp_path)
    score_run(folders[0], metrics=["si_sdr"], workers=1)
    out, notes = merge_runs(folders, tmp_path / "m")
    assert any("si_sdr not merged (scored in 1 of 3 shards)" in n for n in notes)
    assert not (out / "scores.jsonl").exists()
    assert (
        "metrics"
        not in json.loads((out / "run.json").read_text(encoding="utf-8"))["summary"]["loopback:delay_ms=20"]
    )
