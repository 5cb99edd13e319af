"""``s2s-bench data check``: what a run would read, decoded and checked, one row per problem.

A manifest, a built-in set or a ``CORPUS:PATH`` is read through the same code a run uses (its loader, its manifest
reader), so a corpus whose transcripts point at missing files, or a manifest line a run would refuse, shows up
here before a long run; a plain folder has each of its audio files checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..audio import MAX_DURATION_S, MIN_DURATION_S, AudioError, audio_problems, read_audio_channels, to_mono
from ..data import Utterance, file_sha256, parse_manifest

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".aac", ".webm", ".mp4"}
EXPECTED_SR = 16000


@dataclass(frozen=True)
class Finding:
    """One problem with one file. ``severity`` is ``"error"`` (unusable) or ``"warning"`` (usable, but note it)."""

    path: str
    severity: str
    reason: str


def check_file(
    path: str | Path,
    *,
    declared_sr: int | None = None,
    sha256: str | None = None,
    declared_duration: float | None = None,
    min_s: float = MIN_DURATION_S,
    max_s: float = MAX_DURATION_S,
) -> list[Finding]:
    """All problems of one file (never raises): decode errors, audio problems, disagreements with the manifest."""
    where = str(path)
    out: list[Finding] = []
    try:
        if sha256 and Path(path).is_file():
            actual = file_sha256(path)
            if actual is not None and actual != sha256:
                out.append(
                    Finding(
                        where, "error", f"sha256 mismatch: manifest {sha256[:12]}..., file {actual[:12]}..."
                    )
                )
        data, sr = read_audio_channels(path)
        channels = data.shape[1] if data.ndim == 2 else 1
        if declared_sr and sr != declared_sr:
            out.append(
                Finding(where, "error", f"sample rate {sr} Hz but the manifest declares {declared_sr} Hz")
            )
        notes = []
        if channels > 1:
            notes.append(f"{channels} channels (mixed down to mono on load)")
        if sr != EXPECTED_SR and not declared_sr:
            notes.append(f"{sr} Hz (resampled to the backend's rate on load)")
        if notes:
            out.append(Finding(where, "warning", "; ".join(notes)))
        x = to_mono(data)
        out += [Finding(where, sev, reason) for sev, reason in audio_problems(x, sr, min_s, max_s)]
        if declared_duration is not None and sr and abs(x.size / sr - declared_duration) > 0.05:
            out.append(
                Finding(
                    where,
                    "warning",
                    f"duration {x.size / sr:.2f} s but the manifest says {declared_duration:.2f} s",
                )
            )
    except AudioError as exc:
        out.append(Finding(where, "error", exc.reason))
    except Exception as exc:  # noqa: BLE001 - a check must name the file, never crash
        out.append(Finding(where, "error", f"unexpected {type(exc).__name__}: {exc}"))
    return out


def _check_utterance(u: Utterance, min_s: float, max_s: float) -> tuple[list[Finding], int]:
    if not u.audio_path:
        return [Finding(f"<{u.id}>", "error", "manifest line has no audio path")], 1
    found = check_file(
        u.audio_path,
        declared_sr=u.sample_rate,
        sha256=u.sha256,
        declared_duration=u.duration_s,
        min_s=min_s,
        max_s=max_s,
    )
    n = 1
    if u.response_audio_path:
        found += check_file(
            u.response_audio_path,
            declared_sr=u.sample_rate,
            sha256=u.extra.get("response_sha256"),
            min_s=min_s,
            max_s=max_s,
        )
        n += 1
    return found, n


def check_target(
    target: str | Path,
    min_s: float = MIN_DURATION_S,
    max_s: float = MAX_DURATION_S,
    split: str | None = None,
) -> tuple[list[Finding], int]:
    """Check what a run would read from ``target``, exactly as it would read it.

    ``target`` is anything ``--data`` takes: a manifest (``.jsonl`` or a folder holding ``manifest.jsonl``: every
    line is checked, so bad ids, duplicates and wrong types are findings too), a built-in set name, or
    ``CORPUS:PATH`` (the corpus loader reads its transcripts, and every utterance it lists is checked, missing audio
    included); or else a folder of audio files (each checked) or one audio file. ``split`` keeps one split.

    Returns (findings, number of files checked). Raises ``FileNotFoundError`` / ``ValueError`` for a target that
    cannot be read at all (a missing folder, a corpus in another layout, an unknown split).
    """
    from ..data import resolve_data

    if not isinstance(target, Path) and resolve_data(str(target))[0] is not None:
        from ..data import load_utterances

        return _check_utterances(load_utterances(str(target), split=split), min_s, max_s)
    target = Path(target)
    if not target.exists():
        raise FileNotFoundError(f"{target} does not exist")
    manifest = target if target.is_file() else target / "manifest.jsonl"
    if manifest.is_file() and manifest.suffix == ".jsonl":
        utts, problems = parse_manifest(manifest)
        if split:
            utts = [u for u in utts if u.split == split]
        findings = [Finding(f"{manifest}:{n}", "error", why) for n, why in problems]
        found, n_files = _check_utterances(utts, min_s, max_s)
        return findings + found, n_files + len({n for n, _ in problems})
    if target.is_file():
        return check_file(target, min_s=min_s, max_s=max_s), 1
    files = sorted(p for p in target.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    findings: list[Finding] = []
    for path in files:
        findings += check_file(path, min_s=min_s, max_s=max_s)
    return findings, len(files)


def _check_utterances(utts: list[Utterance], min_s: float, max_s: float) -> tuple[list[Finding], int]:
    findings: list[Finding] = []
    n_files = 0
    for u in utts:
        found, n = _check_utterance(u, min_s, max_s)
        findings += found
        n_files += n
    return findings, n_files


def guess_corpus(folder: Path) -> str | None:
    """The corpus loader a plain folder seems to be laid out for (by its transcript files), or ``None``."""
    if not folder.is_dir():
        return None
    names = {p.name for p in folder.iterdir()}
    if {"train.tsv", "dev.tsv", "test.tsv", "validated.tsv"} & names:
        return "commonvoice" if (folder / "clips").is_dir() else "fleurs"
    markers = {
        "line_index.tsv": "openslr66",
        "txt.done.data": "indictts",
        "transcription_n2w.txt": "kathbath",
    }
    for marker, corpus in markers.items():
        if next(folder.rglob(marker), None) is not None:
            return corpus
    if next(folder.rglob("*.parquet"), None) is not None:
        return "shrutilipi"
    return None


def print_report(findings: list[Finding], n_files: int, show_all: bool = False) -> int:
    """Print one row per problem file (status, file, reasons); return 1 if any file is unusable, else 0."""
    by_file: dict[str, list[Finding]] = {}
    for f in findings:
        by_file.setdefault(f.path, []).append(f)
    bad = sorted(p for p, fs in by_file.items() if any(f.severity == "error" for f in fs))
    warn = sorted(p for p in by_file if p not in bad)
    rows = [("ERROR", p, by_file[p]) for p in bad] + [("warn", p, by_file[p]) for p in warn]
    if rows:
        width = min(max(len(p) for _, p, _ in rows), 70)
        print(f"{'status':<6}  {'file':<{width}}  reason")
        for status, path, fs in rows:
            shown = path if len(path) <= width else "..." + path[-(width - 3) :]
            reasons = "; ".join(f.reason for f in sorted(fs, key=lambda f: f.severity != "error"))
            print(f"{status:<6}  {shown:<{width}}  {reasons}")
    ok = n_files - len(bad) - len(warn)
    print(f"{n_files} files checked: {ok} ok, {len(warn)} with warnings, {len(bad)} unusable")
    if show_all and not rows:
        print("no problems found")
    return 1 if bad else 0
