"""The data collection pipeline on small synthetic interviews with planted turns (made here, nothing downloaded).

One collection is built once for the module (two short interviews, a near duplicate re-encoded as mp3, an exact
duplicate as flac beside wav, a corrupt mp4) through the CLI, in-process; the tests read it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("silero_vad", reason="the collection pipeline needs the 'collect' extra")
pytest.importorskip("av")
if importlib.util.find_spec("resemblyzer") is None:
    pytest.skip("speaker turns need resemblyzer (the 'metrics' extra)", allow_module_level=True)

from harness.cli import main as cli  # noqa: E402
from harness.datasets.collect import vad  # noqa: E402
from harness.datasets.collect.evaluate import score_collection  # noqa: E402
from harness.datasets.collect.interviews import InterviewStyle, encode_media, make_interview, write_interview  # noqa: E402
from harness.datasets.collect.manifest import read_jsonl  # noqa: E402
from harness.datasets.collect.stages import stage_dir  # noqa: E402


def _interview(i: int):
    from harness.datasets import espeak, text

    qa = list(text.qa_pairs())[10 * i : 10 * i + 3]
    voices = (espeak.ESPEAK_VOICES[2 * i], espeak.ESPEAK_VOICES[2 * i + 1])
    runs = list(text.sentences())[5 * i : 5 * i + 3]
    return make_interview(qa, voices, seed=i, style=InterviewStyle(run_on_prob=0.5), run_on_texts=runs)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    src = tmp_path_factory.mktemp("sources")
    audio0, truth0 = _interview(0)
    audio1, truth1 = _interview(1)
    write_interview(src / "a-interview0.mp4", audio0, truth0)
    import soundfile as sf

    write_interview(src / "a-interview1.wav", audio1, truth1)
    pcm, _ = sf.read(src / "a-interview1.wav", dtype="int16")
    sf.write(
        src / "b-interview1-copy.flac", pcm, 16000
    )  # the same PCM in another container: an exact duplicate
    encode_media(src / "c-interview0-reupload.mp3", 0.7 * audio0)  # re-encoded and quieter: a near duplicate
    (src / "d-broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    out = tmp_path_factory.mktemp("collected") / "col"
    argv = ["data", "collect", "run", str(out), str(src), "--workers", "0", "--dnsmos", "p808", "--min-dnsmos", "1.0",
            "--quiet", "--set", "splits.test_pct=50", "--set", "splits.dev_pct=0"]  # fmt: skip
    assert cli(argv) == 0
    return out, src


def test_segments_turns_and_pairs_match_the_planted_ones(collection):
    out, _ = collection
    s = score_collection(out)
    assert s["recordings"] == 2
    assert s["boundaries"]["recall"] >= 0.9, s["boundaries"]
    assert s["turns"]["recall"] >= 0.9 and s["turns"]["precision"] >= 0.9, s["turns"]
    assert s["pairs"]["precision"] >= 0.9 and s["pairs"]["recall"] >= 0.8, s["pairs"]
    pairs = read_jsonl(out / "pairs" / "manifest.jsonl")
    assert all(0 <= p["gap_ms"] <= 2000 for p in pairs) and all(
        p["speaker"] != p["response_speaker"] for p in pairs
    )


def test_a_bad_source_is_reported_and_skipped(collection):
    out, _ = collection
    decode = json.loads((stage_dir(out, "decode") / "stage.json").read_text())
    assert [e["unit"] for e in decode["errors"]] == [
        r for r in [e["unit"] for e in decode["errors"]] if "broken" in r
    ]
    assert len(decode["errors"]) == 1 and "cannot decode" in decode["errors"][0]["error"]
    assert decode["records_out"] == 4
    assert "d-broken.mp4" in (out / "card.md").read_text()


def test_exact_and_near_duplicates_are_removed(collection):
    out, _ = collection
    dups = read_jsonl(stage_dir(out, "dedup") / "duplicates.jsonl")
    kinds = {}
    for d in dups:
        kinds.setdefault(d["id"].split("-")[0] + "-" + d["id"].split("-")[1], set()).add(d["kind"])
    assert kinds.get("b-interview1") == {"exact"}, kinds
    assert kinds.get("c-interview0") == {"near"}, kinds
    kept = read_jsonl(out / "manifest.jsonl")
    assert not any(c["recording_id"].startswith(("b-", "c-")) for c in kept)
    assert {c["recording_id"].split("-")[1] for c in kept} == {"interview0", "interview1"}


def test_rerun_is_idempotent_and_a_new_threshold_reruns_only_what_it_touches(collection, tmp_path):
    out, _ = collection
    copy = tmp_path / "col"
    shutil.copytree(out, copy)
    before = (copy / "manifest.jsonl").read_bytes()
    assert cli(["data", "collect", "run", str(copy), "--workers", "0", "--quiet"]) == 0
    assert (copy / "manifest.jsonl").read_bytes() == before
    assert cli(["data", "collect", "run", str(copy), "--workers", "0", "--quiet", "--min-s", "2.5"]) == 0
    info = {n: json.loads((stage_dir(copy, n) / "stage.json").read_text()) for n in ("vad", "filter")}
    assert info["vad"]["run_key"] == json.loads((stage_dir(out, "vad") / "stage.json").read_text())["run_key"]
    assert (
        info["filter"]["params"]["min_duration_s"] == 2.5
        and info["filter"]["filters"]["too_short"]["clips"] > 0
    )
    assert all(c["duration"] >= 2.5 for c in read_jsonl(copy / "manifest.jsonl"))
    card = json.loads((copy / "card.json").read_text())
    assert card["thresholds"]["min_duration_s"] == 2.5


def test_clips_and_pairs_load_through_data_and_the_trainers(collection, tmp_path):
    from harness.data import load_utterances

    out, _ = collection
    clips = load_utterances(str(out))
    assert clips and all(u.load_audio(16000).size > 16000 for u in clips)
    assert all(u.extra["source_end_s"] > u.extra["source_start_s"] for u in clips)
    pytest.importorskip("vector_quantize_pytorch")
    from s2s_fixtures import save_tiny_codec

    from custom_model import train_s2s
    from custom_model.train_codec import load_split_audio

    split = clips[0].split  # splits are by a hash of each recording: use one that exists
    arrays, ids = load_split_audio(str(out), split, 16000)
    assert arrays and len(arrays) == len([u for u in clips if u.split == split])
    codec_dir = save_tiny_codec(tmp_path / "codec")
    pairs = str(out / "pairs" / "manifest.jsonl")
    args = ["--preset", "tiny", "--pairs", pairs, "--codec", str(codec_dir), "--out", str(tmp_path / "run"),
            "--cache-dir", str(tmp_path / "cache"), "--batch-size", "2", "--steps", "2", "--warmup", "1",
            "--train-split", split, "--eval-split", split, "--save-every", "2", "--eval-every", "2", "--no-progress"]  # fmt: skip
    assert train_s2s.main(args) == 0
    assert (tmp_path / "run" / "checkpoint.pt").exists()


def test_worker_pool_gives_the_same_records_as_in_process(collection, tmp_path):
    out, src = collection
    pooled = tmp_path / "pooled"
    argv = ["data", "collect", "run", str(pooled), str(src), "--workers", "2", "--until", "loudness", "--quiet",
            "--set", "splits.test_pct=50", "--set", "splits.dev_pct=0"]  # fmt: skip
    assert cli(argv) == 0
    for name in ("decode", "loudness"):
        a = read_jsonl(stage_dir(pooled, name) / "manifest.jsonl")
        b = read_jsonl(stage_dir(out, name) / "manifest.jsonl")
        drop = ("audio",)
        assert [{k: v for k, v in r.items() if k not in drop} for r in a] == [
            {k: v for k, v in r.items() if k not in drop} for r in b
        ]
    assert json.loads((stage_dir(pooled, "decode") / "stage.json").read_text())["workers"] == 2


def test_parquet_holds_the_clips_with_provenance(collection):
    datasets = pytest.importorskip("datasets")
    import io

    import soundfile as sf

    out, _ = collection
    ds = datasets.load_dataset("parquet", data_files=str(out / "parquet" / "clips-*.parquet"), split="train")
    ds = ds.cast_column("audio", datasets.Audio(decode=False))
    manifest = read_jsonl(out / "manifest.jsonl")
    assert len(ds) == len(manifest)
    row = ds[0]
    x, sr = sf.read(io.BytesIO(row["audio"]["bytes"]))
    assert sr == 16000 and abs(x.size / sr - row["duration"]) < 0.01
    assert row["recording_id"] and row["license"] and row["source_end_s"] > row["source_start_s"]


def test_long_speech_is_cut_at_its_longest_pause_else_marked_forced():
    cfg = vad.VadConfig(max_segment_s=10.0)
    n = int(25 * 16000 / vad.FRAME)
    probs = np.full(n, 0.95, np.float32)
    pause = slice(int(7.0 * 16000 / vad.FRAME), int(7.3 * 16000 / vad.FRAME))
    probs[pause] = 0.05
    probs[int(8.0 * 16000 / vad.FRAME) : int(8.1 * 16000 / vad.FRAME)] = 0.05
    pieces = vad.split_long((0, 25 * 16000), probs, cfg)
    assert all(b - a <= 10 * 16000 for a, b, _ in pieces)
    assert pieces[0][2] == "pause" and 7.0 <= pieces[0][1] / 16000 <= 7.1
    assert any(how == "forced" for _, _, how in pieces)  # 7.3 s .. 25 s has no pause within 10 s


def test_snr_estimate_follows_the_planted_noise_level():
    from harness.datasets.collect.quality import snr_estimate

    rng = np.random.default_rng(0)
    sr = 16000
    speech = np.sin(2 * np.pi * 200 * np.arange(3 * sr) / sr) * (
        0.5 + 0.5 * np.sin(2 * np.pi * 3 * np.arange(3 * sr) / sr)
    )
    for snr in (5.0, 25.0):
        x = np.zeros(6 * sr)
        x[sr : 4 * sr] = speech
        p_s = np.mean(speech**2)
        x += rng.standard_normal(x.size) * np.sqrt(p_s / 10 ** (snr / 10))
        est, method = snr_estimate(x.astype(np.float32), (sr, 4 * sr), [(sr, 4 * sr)])
        assert method == "pauses" and abs(est - snr) < 1.5, (snr, est)


def test_download_records_provenance_resumes_and_feeds_ingest(tmp_path):
    pytest.importorskip("yt_dlp")
    from harness.datasets.collect.sources import collect_sources

    media = encode_media(tmp_path / "talk.mp3", (0.1 * np.sin(np.arange(32000) / 5)).astype(np.float32))
    urls = tmp_path / "urls.txt"
    urls.write_text(f"# a comment\n{media.as_uri()}\nfile://{tmp_path}/missing.mp4\n")
    dl = tmp_path / "dl"
    assert (
        cli(["data", "collect", "download", str(urls), "--out", str(dl), "--allow-file-urls", "--quiet"]) == 1
    )
    log = [json.loads(line) for line in (dl / "downloads.jsonl").read_text().splitlines()]
    assert [r["status"] for r in log] == ["ok", "error"] and log[0]["title"] == "talk"
    assert (
        cli(["data", "collect", "download", str(urls), "--out", str(dl), "--allow-file-urls", "--quiet"]) == 1
    )
    log = [json.loads(line) for line in (dl / "downloads.jsonl").read_text().splitlines()]
    assert len(log) == 3 and log[-1]["status"] == "error"  # the good URL was skipped, the bad one retried
    recs, problems = collect_sources([str(dl)], tmp_path / "work")
    assert len(recs) == 1 and recs[0]["url"] == media.as_uri() and recs[0]["title"] == "talk"
    assert recs[0]["kind"] == "download" and not problems


def test_hf_datasets_folders_are_sources(tmp_path):
    datasets = pytest.importorskip("datasets")
    import io

    import soundfile as sf

    from harness.datasets.collect.sources import collect_sources

    def wav_bytes(seconds: float) -> bytes:
        buf = io.BytesIO()
        sf.write(
            buf, (0.1 * np.sin(np.arange(int(seconds * 16000)) / 4)).astype(np.float32), 16000, format="WAV"
        )
        return buf.getvalue()

    table = {"audio": [{"bytes": wav_bytes(1.0), "path": "a.wav"}, {"bytes": wav_bytes(2.0), "path": "b.wav"}],
             "text": ["ఒకటి", "రెండు"], "license": ["CC-BY-4.0", "CC-BY-4.0"]}  # fmt: skip
    import pyarrow as pa

    t = pa.table({"audio": pa.array(table["audio"], type=pa.struct({"bytes": pa.binary(), "path": pa.string()})),
                  "text": table["text"], "license": table["license"]})  # fmt: skip
    feats = datasets.Features({"audio": datasets.Audio(decode=False), "text": datasets.Value("string"),
                               "license": datasets.Value("string")})  # fmt: skip
    datasets.Dataset(t, info=datasets.DatasetInfo(features=feats)).save_to_disk(str(tmp_path / "saved"))
    folder = tmp_path / "audiofolder"
    folder.mkdir()
    (folder / "x.wav").write_bytes(wav_bytes(1.5))
    (folder / "metadata.csv").write_text("file_name,text\nx.wav,మూడు\n", encoding="utf-8")
    recs, problems = collect_sources([f"hf:{tmp_path / 'saved'}", str(folder)], tmp_path / "work")
    assert not problems, problems
    assert len(recs) == 3 and all(r["kind"] == "hf" and Path(r["path"]).exists() for r in recs)
    assert recs[0]["license"] == "CC-BY-4.0" and recs[0]["hf_row"]["text"] == "ఒకటి"
    assert recs[2]["hf_row"]["text"] == "మూడు"


def test_asr_without_local_weights_stops_with_a_clear_message(tmp_path, capsys):
    media = encode_media(tmp_path / "x.wav", np.zeros(16000, np.float32))
    rc = cli(["data", "collect", "run", str(tmp_path / "col"), str(media), "--asr", f"whisper:path={tmp_path}/nope",
              "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "transcribe stage" in err and "nope" in err and "drop --asr" in err


def test_the_cheap_dnsmos_path_scores_p808_exactly_as_the_full_one():
    from harness.metrics.nonintrusive import dnsmos, dnsmos_p808

    rng = np.random.default_rng(1)
    x = (
        0.2 * np.sin(2 * np.pi * 180 * np.arange(3 * 16000) / 16000) + 0.01 * rng.standard_normal(3 * 16000)
    ).astype(np.float32)
    assert dnsmos_p808(x, 16000)["p808"] == pytest.approx(dnsmos(x, 16000)["p808"], abs=1e-6)
