"""Real-corpus loaders on tiny fake folders in each corpus's published layout (audio written here)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from harness.data import load_utterances

TEXT = "నమస్కారం, మీరు ఎలా ఉన్నారు?"


def tone(seconds: float = 0.6, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)


def wav(path, seconds=0.6, sr=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, sr), sr, subtype="PCM_16")


def compressed(path, fmt, codec, seconds=0.6, sr=16000):
    av = pytest.importorskip("av", reason="mp3/m4a need PyAV (the 'data' extra)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=sr)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(tone(seconds, sr)[None, :], format="flt", layout="mono")
        frame.sample_rate = sr
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def check_loads(utts, n, sr=16000):
    assert len(utts) == n
    for u in utts:
        x = u.load_audio(sr)
        assert x.dtype == np.float32 and x.size > 0.3 * sr
        assert u.text and u.language == "te"


def test_common_voice(tmp_path):
    root = tmp_path / "cv-corpus-17.0" / "te"
    header = "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\tgender\taccents\n"
    for split, names in {"train": ["a", "b"], "dev": ["c"], "test": ["d"]}.items():
        rows = "".join(f"spk{n}\tcommon_voice_te_{n}.mp3\tsid\t{TEXT}\t\t2\t0\t\tfemale\t\n" for n in names)
        (root / f"{split}.tsv").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{split}.tsv").write_text(header + rows, encoding="utf-8")
        for n in names:
            compressed(root / "clips" / f"common_voice_te_{n}.mp3", "mp3", "libmp3lame", sr=48000)
    utts = load_utterances(f"commonvoice:{root}")
    check_loads(utts, 4)
    assert [u.split for u in utts] == ["train", "train", "dev", "test"]
    assert len(load_utterances(f"commonvoice:{root}", split="test")) == 1


def test_fleurs(tmp_path):
    root = tmp_path / "fleurs" / "te_in"
    for split, ids in {"train": [1, 2], "test": [3]}.items():
        lines = "".join(f"{i}\t{i}00.wav\t{TEXT}\tనమస్కారం మీరు ఎలా ఉన్నారు\tn a\t9600\tFEMALE\n" for i in ids)
        root.mkdir(parents=True, exist_ok=True)
        (root / f"{split}.tsv").write_text(lines, encoding="utf-8")
        for i in ids:
            wav(root / "audio" / split / f"{i}00.wav")
    utts = load_utterances(f"fleurs:{root}")
    check_loads(utts, 3)
    assert utts[0].text == TEXT and utts[0].extra["normalized_text"].startswith("నమస్కారం")
    assert {u.split for u in utts} == {"train", "test"}


def test_fleurs_unextracted_tarball_is_explained(tmp_path):
    root = tmp_path / "te_in"
    (root / "audio").mkdir(parents=True)
    (root / "test.tsv").write_text(f"1\t100.wav\t{TEXT}\tx\tx\t1\tMALE\n", encoding="utf-8")
    (root / "audio" / "test.tar.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="extract"):
        load_utterances(f"fleurs:{root}")


def test_openslr66(tmp_path):
    for gender, spk in (("female", "tef_0001"), ("male", "tem_0002")):
        d = tmp_path / f"te_in_{gender}"
        ids = [f"{spk}_0000000{i}" for i in range(2)]
        d.mkdir()
        (d / "line_index.tsv").write_text("".join(f"{i}\t{TEXT}\n" for i in ids), encoding="utf-8")
        for i in ids:
            wav(d / f"{i}.wav", sr=48000)
    utts = load_utterances(f"openslr66:{tmp_path}")
    check_loads(utts, 4)
    assert {u.speaker for u in utts} == {"tef_0001", "tem_0002"}
    by_speaker = {}
    for u in utts:
        by_speaker.setdefault(u.speaker, set()).add(u.split)
    assert all(len(s) == 1 for s in by_speaker.values()), "a speaker is in one split only"


def test_indictts(tmp_path):
    for spk in ("male", "female"):
        d = tmp_path / "Telugu" / spk
        d.mkdir(parents=True)
        (d / "txt.done.data").write_text(
            f'( train_telugu{spk}_00001 "{TEXT}" )\n( train_telugu{spk}_00002 "ఈ రోజు వాతావరణం బాగుంది." )\n',
            encoding="utf-8",
        )
        for k in (1, 2):
            wav(d / "wav" / f"train_telugu{spk}_0000{k}.wav", sr=48000)
    utts = load_utterances(f"indictts:{tmp_path}")
    check_loads(utts, 4)
    assert {u.speaker for u in utts} == {"indictts-male", "indictts-female"}
    assert utts[0].text == TEXT


def test_kathbath(tmp_path):
    for split, name in (("train", "844424930367046-1178-f"), ("test_known", "844424930367047-1179-m")):
        d = tmp_path / "kathbath" / split / "telugu"
        d.mkdir(parents=True)
        (d / "transcription_n2w.txt").write_text(f"{name}.m4a\t{TEXT}\n", encoding="utf-8")
        compressed(d / "audio" / "1178" / f"{name}.m4a", "ipod", "aac")
    utts = load_utterances(f"kathbath:{tmp_path / 'kathbath'}")
    check_loads(utts, 2)
    assert sorted(u.split for u in utts) == ["test", "train"]
    assert utts[0].speaker == "kathbath-1178"


def test_indicvoices_segments_are_cut_on_load(tmp_path):
    d = tmp_path / "Telugu" / "train"
    wav(d / "rec1.wav", seconds=3.0)
    meta = {"speaker_id": "S1", "segments": [{"start": 0.5, "end": 1.5, "text": TEXT},
                                             {"start": 2.0, "end": 2.8, "text": "సరే."}]}  # fmt: skip
    (d / "rec1.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    utts = load_utterances(f"indicvoices:{tmp_path}")
    check_loads(utts, 2)
    assert utts[0].load_audio(16000).size == 16000
    assert abs(utts[1].load_audio(16000).size - 12800) <= 1
    assert utts[0].split == "train" and utts[0].speaker == "indicvoices-S1"


def test_shrutilipi_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import io

    import pyarrow.parquet as pq

    rows = []
    for i in range(3):
        buf = io.BytesIO()
        sf.write(buf, tone(0.6), 16000, format="WAV", subtype="PCM_16")
        rows.append({"bytes": buf.getvalue(), "path": f"clip{i}.wav"})
    table = pa.table({"audio": rows, "transcriptions": [TEXT] * 3})
    (tmp_path / "data" / "telugu").mkdir(parents=True)
    pq.write_table(table, tmp_path / "data" / "telugu" / "train-00000-of-00001.parquet")
    utts = load_utterances(f"shrutilipi:{tmp_path / 'data'}", cache=str(tmp_path / "cache"))
    check_loads(utts, 3)
    assert all(u.split == "train" for u in utts)


def test_missing_folder_and_unknown_spelling_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_utterances(f"fleurs:{tmp_path / 'nope'}")
    with pytest.raises(ValueError, match="CORPUS:/path"):
        load_utterances("nosuchcorpus:/tmp")
