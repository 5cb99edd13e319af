"""Loaders for real Telugu corpora from local folders, in the layouts they are published in.

Point ``--data`` at the folder as ``CORPUS:PATH``, e.g. ``--data fleurs:/data/fleurs/te_in`` or
``--data commonvoice:/data/cv-corpus-17.0/te``. Nothing is downloaded. Audio is decoded lazily when a backend
needs it (mp3/m4a through PyAV). Splits follow the corpus where it has them; otherwise they are assigned by a hash
of the speaker (OpenSLR 66, IndicTTS) or recording, so no speaker is in two splits.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from ..data import Utterance
from .build import default_cache_root, split_of

AUDIO_EXTS = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus")


def _folder(path: str | Path | None, corpus: str, hint: str) -> Path:
    if not path:
        raise ValueError(f"{corpus} needs a local folder: --data {corpus}:/path/to/folder ({hint})")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{corpus}: folder {root} does not exist ({hint})")
    return root


def _index_audio(root: Path, exts: Iterable[str] = AUDIO_EXTS) -> dict[str, Path]:
    """File stem -> path for every audio file under ``root`` (first found wins, in sorted order)."""
    index: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in exts and p.is_file():
            index.setdefault(p.stem, p)
    return index


def _index_by_name(root: Path, exts: Iterable[str] = AUDIO_EXTS) -> dict[str, list[Path]]:
    """File name -> every audio file of that name under ``root`` (sorted)."""
    index: dict[str, list[Path]] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in exts and p.is_file():
            index.setdefault(p.name, []).append(p)
    return index


def _prefer_telugu(paths: list[Path]) -> list[Path]:
    te = [p for p in paths if any(part.lower() in ("telugu", "te", "te_in") for part in p.parts)]
    return te or paths


def _tsv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


# ------------------------------------------------------------------------------------------------ Common Voice


def common_voice(path: str | None = None, tables: str = "train,dev,test") -> list[Utterance]:
    """Common Voice ``te``: ``clips/*.mp3`` plus ``train.tsv``/``dev.tsv``/``test.tsv`` (or ``validated.tsv`` etc.).

    ``path`` is the language folder (``cv-corpus-XX/te``). ``tables`` picks the TSVs to read; each row's split is
    the TSV's name.
    """
    root = _folder(path, "commonvoice", "the 'te' folder holding clips/ and train.tsv, dev.tsv, test.tsv")
    clips = root / "clips"
    out: list[Utterance] = []
    found_any = False
    for table in [t.strip() for t in tables.split(",") if t.strip()]:
        tsv = root / f"{table}.tsv"
        if not tsv.exists():
            continue
        found_any = True
        for row in _tsv_rows(tsv):
            name = row.get("path", "")
            if not name:
                continue
            out.append(
                Utterance(
                    id=f"cv-{Path(name).stem}",
                    audio_path=str(clips / name),
                    text=row.get("sentence", ""),
                    speaker=f"cv-{row.get('client_id', '')[:16]}" if row.get("client_id") else None,
                    language="te",
                    split=table,
                    source="Common Voice",
                    license="CC0-1.0",
                    extra={k: row[k] for k in ("gender", "age", "accents") if row.get(k)},
                )
            )
    if not found_any:
        raise FileNotFoundError(f"commonvoice: no {tables.replace(',', '.tsv, ')}.tsv in {root}")
    return out


# ------------------------------------------------------------------------------------------------ FLEURS

FLEURS_COLUMNS = ("id", "file_name", "raw_transcription", "transcription", "words", "num_samples", "gender")


def fleurs(path: str | None = None) -> list[Utterance]:
    """FLEURS ``te_in``: ``train.tsv``/``dev.tsv``/``test.tsv`` (no header: id, file name, raw transcription,
    normalised transcription, characters, samples, gender) plus ``audio/<split>/*.wav`` (the extracted tarballs)."""
    root = _folder(path, "fleurs", "the te_in folder holding train.tsv, dev.tsv, test.tsv and audio/")
    out: list[Utterance] = []
    index: dict[str, list[Path]] | None = None
    for split in ("train", "dev", "test"):
        tsv = root / f"{split}.tsv"
        if not tsv.exists():
            continue
        audio_dir = root / "audio" / split
        if not audio_dir.is_dir() and (root / "audio" / f"{split}.tar.gz").exists():
            raise FileNotFoundError(
                f"fleurs: extract {root / 'audio' / (split + '.tar.gz')} into {audio_dir} first"
            )
        rows = []
        with open(tsv, encoding="utf-8", newline="") as fh:
            for cols in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(cols) < 4:
                    continue
                row = dict(zip(FLEURS_COLUMNS, cols, strict=False))
                wav = audio_dir / row["file_name"]
                if not wav.exists() and (audio_dir / split / row["file_name"]).exists():
                    wav = audio_dir / split / row["file_name"]  # some tarballs nest audio/<split>/<split>/
                if not wav.exists():  # another layout: the file by its name anywhere under the folder,
                    if index is None:  # preferring one under a folder named after the split
                        index = _index_by_name(root)
                    candidates = index.get(row["file_name"], [])
                    named = [c for c in candidates if split in c.parts[len(root.parts) :]]
                    if len(named or candidates) == 1:
                        wav = (named or candidates)[0]
                rows.append((row, wav))
        for row, wav in rows:
            out.append(
                    Utterance(
                        id=f"fleurs-{split}-{Path(row['file_name']).stem}",
                        audio_path=str(wav),
                        text=row["raw_transcription"],
                        speaker=None,
                        language="te",
                        split=split,
                        source="FLEURS te_in",
                        license="CC-BY-4.0",
                        extra={"fleurs_id": row["id"], "normalized_text": row["transcription"],
                               "gender": row.get("gender", "")},
                    )
                )  # fmt: skip
    if not out:
        raise FileNotFoundError(f"fleurs: no train.tsv, dev.tsv or test.tsv in {root}")
    return out


# ------------------------------------------------------------------------------------------------ OpenSLR 66


def openslr66(path: str | None = None) -> list[Utterance]:
    """OpenSLR 66 (crowd-sourced Telugu, ``te_in_female`` / ``te_in_male``): ``line_index.tsv`` (file id TAB text)
    beside the wavs. Every ``line_index.tsv`` under ``path`` is read; splits are by speaker."""
    root = _folder(path, "openslr66", "the folder holding the extracted te_in_female/te_in_male zips")
    indexes = sorted(root.rglob("line_index.tsv"))
    if not indexes:
        raise FileNotFoundError(f"openslr66: no line_index.tsv under {root}")
    out = []
    for index in indexes:
        audio = _index_audio(index.parent)
        for line in index.read_text(encoding="utf-8").splitlines():
            if "\t" not in line:
                continue
            file_id, text = (s.strip() for s in line.split("\t", 1))
            speaker = "_".join(file_id.split("_")[:2])  # tem_01234_00012345678 -> tem_01234
            wav = audio.get(file_id, index.parent / f"{file_id}.wav")
            out.append(
                Utterance(
                    id=f"slr66-{file_id}",
                    audio_path=str(wav),
                    text=text,
                    speaker=speaker,
                    language="te",
                    split=split_of(speaker),
                    source="OpenSLR 66",
                    license="CC-BY-SA-4.0",
                )
            )
    return out


# ------------------------------------------------------------------------------------------------ IndicTTS

_FESTVOX_LINE = re.compile(r'^\(\s*(\S+)\s+"(.*)"\s*\)\s*$')


def indictts(path: str | None = None) -> list[Utterance]:
    """IndicTTS Telugu (IIT Madras): festvox-style ``txt.done.data`` (``( utt_id "text" )``) with ``wav/*.wav``
    beside it, one folder per speaker (e.g. ``male/``, ``female/``). Splits are by speaker."""
    root = _folder(path, "indictts", "the Telugu folder holding <speaker>/txt.done.data and <speaker>/wav/")
    prompts = _prefer_telugu(sorted(root.rglob("txt.done.data")))
    if not prompts:
        raise FileNotFoundError(f"indictts: no txt.done.data under {root}")
    out = []
    for prompt in prompts:
        audio = _index_audio(prompt.parent)
        speaker_dir = (
            prompt.parent.parent if prompt.parent.name.lower() in ("txt", "text", "etc") else prompt.parent
        )
        speaker = f"indictts-{speaker_dir.name}"
        for line in prompt.read_text(encoding="utf-8").splitlines():
            m = _FESTVOX_LINE.match(line.strip())
            if not m:
                continue
            utt_id, text = m.group(1), m.group(2).strip()
            if utt_id not in audio:
                audio = audio or _index_audio(speaker_dir)
            wav = audio.get(utt_id, speaker_dir / "wav" / f"{utt_id}.wav")
            out.append(
                Utterance(
                    id=f"indictts-{speaker_dir.name}-{utt_id}",
                    audio_path=str(wav),
                    text=text,
                    speaker=speaker,
                    language="te",
                    split=split_of(speaker),
                    source="IndicTTS Telugu (IIT Madras)",
                    license="IndicTTS licence (research use; see the corpus)",
                )
            )
    return out


# ------------------------------------------------------------------------------------------------ Kathbath

KATHBATH_SPLITS = {"train": "train", "valid": "dev", "test_known": "test", "test_unknown": "test_unknown"}


def kathbath(path: str | None = None) -> list[Utterance]:
    """Kathbath (AI4Bharat): per split (``train``, ``valid``, ``test_known``, ``test_unknown``) a
    ``transcription_n2w.txt`` (audio file name TAB text, numbers spelled out) and the ``.m4a`` audio, in speaker
    folders. The split is the nearest split-named folder above the transcript; Telugu folders are preferred
    when the tree holds several languages."""
    root = _folder(path, "kathbath", "the folder holding train/valid/test_known/test_unknown with m4a audio")
    transcripts = _prefer_telugu(sorted(root.rglob("transcription_n2w.txt")))
    if not transcripts:
        raise FileNotFoundError(f"kathbath: no transcription_n2w.txt under {root}")
    out = []
    for tr in transcripts:
        split_dir = next((p for p in [tr.parent, *tr.parents] if p.name in KATHBATH_SPLITS), tr.parent)
        split = KATHBATH_SPLITS.get(split_dir.name, "test")
        audio = _index_audio(split_dir)
        for line in tr.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t", 1) if "\t" in line else line.split(None, 1)
            if len(parts) != 2:
                continue
            name, text = parts[0].strip(), parts[1].strip()
            wav = audio.get(Path(name).stem)
            speaker = wav.parent.name if wav is not None and wav.parent != split_dir else None
            out.append(
                Utterance(
                    id=f"kathbath-{split}-{Path(name).stem}",
                    audio_path=str(wav if wav is not None else split_dir / name),
                    text=text,
                    speaker=f"kathbath-{speaker}" if speaker else None,
                    language="te",
                    split=split,
                    source="Kathbath (AI4Bharat)",
                    license="CC-BY-4.0",
                )
            )
    return out


# ------------------------------------------------------------------------------------------------ IndicVoices


def _segments(meta: dict) -> list[dict]:
    for key in ("segments", "verbatim", "utterances"):
        segs = meta.get(key)
        if isinstance(segs, list) and segs and isinstance(segs[0], dict):
            return segs
    return []


def _segment_text(seg: dict) -> str:
    for key in ("text", "verbatim", "transcript", "normalized"):
        if isinstance(seg.get(key), str) and seg[key].strip():
            return seg[key].strip()
    return ""


def indicvoices(path: str | None = None) -> list[Utterance]:
    """IndicVoices (AI4Bharat): each recording ``X.wav`` with ``X.json`` beside it listing segments (start, end in
    seconds, text, speaker). One utterance per segment; the audio is cut on load. Split from a ``train``/``valid``/
    ``test`` folder in the path, else by a hash of the recording."""
    root = _folder(
        path, "indicvoices", "the Telugu folder holding the .wav recordings and their .json segments"
    )
    metas = _prefer_telugu(sorted(root.rglob("*.json")))
    out = []
    for meta_path in metas:
        wav = next((meta_path.with_suffix(e) for e in AUDIO_EXTS if meta_path.with_suffix(e).exists()), None)
        if wav is None:
            continue
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(meta, dict):
            continue
        folder_split = next(
            (KATHBATH_SPLITS.get(p, p) for p in meta_path.parts if p in ("train", "valid", "test")), None
        )
        split = folder_split or split_of(meta_path.stem)
        for k, seg in enumerate(_segments(meta)):
            try:
                start, end = float(seg["start"]), float(seg["end"])
            except (KeyError, TypeError, ValueError):
                continue
            speaker = seg.get("speaker_id") or seg.get("speaker") or meta.get("speaker_id")
            out.append(
                Utterance(
                    id=f"indicvoices-{meta_path.stem}-{k:03d}",
                    audio_path=str(wav),
                    duration_s=round(end - start, 3),
                    text=_segment_text(seg),
                    speaker=f"indicvoices-{speaker}" if speaker else None,
                    language="te",
                    split=split,
                    source="IndicVoices (AI4Bharat)",
                    license="CC-BY-4.0",
                    extra={"start_s": start, "end_s": end},
                )
            )
    if not out:
        raise FileNotFoundError(f"indicvoices: no .json segment files with a matching .wav under {root}")
    return out


# ------------------------------------------------------------------------------------------------ Shrutilipi

SHRUTILIPI_TEXT_COLUMNS = ("transcriptions", "transcription", "text", "sentence")


def shrutilipi(path: str | None = None, cache: str | None = None) -> list[Utterance]:
    """Shrutilipi (AI4Bharat) as published on the Hugging Face hub: parquet files with an ``audio`` column
    ({bytes, path}) and a transcription column. Audio bytes are extracted once into the cache
    (``<cache>/shrutilipi/<hash of the folder>``); splits from the parquet file names (train/validation/test)."""
    root = _folder(path, "shrutilipi", "the folder holding the Telugu parquet files")
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "reading Shrutilipi parquet needs pyarrow: pip install 's2s-bench[data]'"
        ) from None
    files = _prefer_telugu(sorted(root.rglob("*.parquet")))
    if not files:
        raise FileNotFoundError(f"shrutilipi: no .parquet files under {root}")
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    out_dir = (Path(cache).expanduser() if cache else default_cache_root()) / "shrutilipi" / key
    out = []
    for f in files:
        stem = f.stem.lower()
        split = "dev" if "valid" in stem or "dev" in stem else "test" if "test" in stem else "train"
        table = pq.read_table(f)
        cols = table.column_names
        text_col = next((c for c in SHRUTILIPI_TEXT_COLUMNS if c in cols), None)
        if "audio" not in cols or text_col is None:
            raise ValueError(
                f"shrutilipi: {f} has columns {cols}; expected 'audio' and one of {SHRUTILIPI_TEXT_COLUMNS}"
            )
        audio_col, texts = table.column("audio").to_pylist(), table.column(text_col).to_pylist()
        for i, (audio, text) in enumerate(zip(audio_col, texts, strict=True)):
            if not isinstance(audio, dict) or not audio.get("bytes"):
                continue
            ext = Path(audio.get("path") or "x.wav").suffix or ".wav"
            target = out_dir / f.stem / f"{i:06d}{ext}"
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_suffix(target.suffix + ".tmp")
                tmp.write_bytes(audio["bytes"])
                tmp.replace(target)
            out.append(
                Utterance(
                    id=f"shrutilipi-{f.stem}-{i:06d}",
                    audio_path=str(target),
                    text=text if isinstance(text, str) else " ".join(map(str, text or [])),
                    language="te",
                    split=split,
                    source="Shrutilipi (AI4Bharat)",
                    license="CC-BY-4.0",
                )
            )
    return out


CORPORA: dict[str, tuple[Callable[..., list[Utterance]], str]] = {
    "commonvoice": (
        common_voice,
        "Common Voice te from a local folder: --data commonvoice:/path/to/cv-corpus/te",
    ),
    "fleurs": (fleurs, "FLEURS te_in from a local folder: --data fleurs:/path/to/fleurs/te_in"),
    "openslr66": (openslr66, "OpenSLR 66 Telugu (line_index.tsv + wavs): --data openslr66:/path"),
    "indictts": (indictts, "IndicTTS Telugu (txt.done.data + wav/): --data indictts:/path"),
    "kathbath": (kathbath, "Kathbath Telugu (m4a + transcription_n2w.txt): --data kathbath:/path"),
    "indicvoices": (indicvoices, "IndicVoices Telugu (wav + JSON segments): --data indicvoices:/path"),
    "shrutilipi": (shrutilipi, "Shrutilipi Telugu (parquet): --data shrutilipi:/path"),
}
