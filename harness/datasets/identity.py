"""The identity of a built-in set: which voices it holds, which synthesisers made it, and a checksum.

Two machines measure the same utterances only when their sets have the same identity. A set built without one of
its reference voices (festival missing or broken, ``--no-festival``) has other utterances: its identity says
``degraded`` with the reason, it is written into ``build.json`` (the manifest's header), into every run.json that
uses the set (``data.identity``), printed loudly by the build and by every run, and gates call two runs whose
identities differ not comparable.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

MANIFEST = "manifest.jsonl"
BUILD_INFO = "build.json"
DEBIAN_PACKAGES = ("festival", "festvox-te-nsk", "festival-te")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def debian_version(package: str) -> str | None:
    """The installed version of a Debian package, or ``None`` (not installed, or not a Debian system)."""
    try:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}\t${Version}", package],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    status, _, ver = proc.stdout.partition("\t")
    return ver.strip() if proc.returncode == 0 and "install ok installed" in status else None


def synthesizer_versions(with_festival: bool) -> dict[str, str | None]:
    """Versions of what synthesised the set: the espeak-ng wheel and, when festival was used, its packages."""
    out: dict[str, str | None] = {}
    try:
        out["espeakng-loader"] = version("espeakng-loader")
    except PackageNotFoundError:
        out["espeakng-loader"] = None
    if with_festival:
        for package in DEBIAN_PACKAGES:
            out[package] = debian_version(package)
    return out


def voices_of(records: list[dict[str, Any]]) -> list[str]:
    """Every voice that speaks in a manifest (inputs and responses)."""
    found = {r.get("speaker") for r in records} | {r.get("response_speaker") for r in records}
    return sorted(v for v in found if v)


def build_identity(
    name: str,
    manifest: Path,
    records: list[dict[str, Any]],
    reference_voices: list[str] | None,
    failed: list[dict[str, str]] | None = None,
    why_missing: dict[str, str] | None = None,
    synthesizers: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """The identity of a built set. ``reference_voices``: the voices a complete build holds (``None``: unknown);
    ``why_missing``: voice -> why it could not be used (festival not installed, say)."""
    voices = voices_of(records)
    missing = sorted(set(reference_voices or ()) - set(voices))
    reasons = []
    for voice in missing:
        why = (why_missing or {}).get(voice)
        if why is None:
            first = next((f["reason"] for f in failed or () if f.get("reason", "").startswith(voice)), None)
            why = f"every utterance failed, e.g. {first}" if first else "not used in this build"
        reasons.append(f"no {voice} voice ({why})")
    uses_festival = any(v.startswith("festival") for v in voices)
    return {
        "name": name,
        "manifest_sha256": file_sha256(manifest),
        "utterances": len(records),
        "voices": voices,
        "reference_voices": sorted(reference_voices) if reference_voices is not None else None,
        "missing_voices": missing,
        "degraded": bool(missing),
        "degraded_reason": "; ".join(reasons) if reasons else None,
        "failed_utterances": len(failed or ()),
        "synthesizers": synthesizers if synthesizers is not None else synthesizer_versions(uses_festival),
    }


def read_identity(set_dir: Path, name: str | None = None) -> dict[str, Any] | None:
    """The identity recorded in ``set_dir/build.json``; for a build from before identities, computed from the
    manifest (the reference voices then come from the set's name). ``None`` when ``set_dir`` holds no built set."""
    manifest, info_path = set_dir / MANIFEST, set_dir / BUILD_INFO
    if not manifest.exists() or not info_path.exists():
        return None
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if isinstance(info.get("identity"), dict):
        return info["identity"]
    records = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    from .telugu import reference_voices

    set_name = name or info.get("name") or set_dir.name
    return build_identity(
        set_name, manifest, records, reference_voices(set_name), info.get("failed"), synthesizers={}
    )


def data_identity(data: str) -> dict[str, Any] | None:
    """The identity behind a ``--data`` value: a built-in set (from the cache) or a manifest path (its checksum,
    plus the identity of the set it belongs to when a ``build.json`` lies beside it); ``None`` otherwise."""
    from .build import dataset_dir
    from .telugu import BUILDERS

    if data in BUILDERS:
        return read_identity(dataset_dir(data), data)
    path = Path(data)
    manifest = path / MANIFEST if path.is_dir() else path
    if manifest.suffix == ".jsonl" and manifest.is_file():
        found = read_identity(manifest.parent)
        if found is not None and found.get("manifest_sha256") == file_sha256(manifest):
            return found
        return {"name": str(manifest), "manifest_sha256": file_sha256(manifest), "degraded": False}
    return None
