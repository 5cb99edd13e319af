"""``s2s-bench data collect download``: fetch a URL list with yt-dlp, separately from (and before) the pipeline.

Each URL's media lands in the download folder as ``<extractor>-<id>.<ext>`` and one line is appended to
``downloads.jsonl`` with what yt-dlp reports: ``title``, ``channel`` (or uploader), ``license``, ``webpage_url``,
``duration``, plus the original URL and the file. The folder is then a source for ``data collect run``, which
carries those fields into every clip's provenance.

Resumable: a URL whose line says ``ok`` and whose file is still there is skipped; a failed URL is retried on the next
run (its error stays in the log); yt-dlp continues partial ``.part`` files. Only audio is asked for
(``bestaudio/best``), and nothing is post-processed (no ffmpeg binary is needed). ``file://`` URLs work only with
``allow_file_urls`` (yt-dlp's ``--enable-file-urls``); the tests use them, so no network is needed.

Respect the terms of each site and the licence of each recording: the licence yt-dlp reports is recorded, not
checked.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

LOG = "downloads.jsonl"


def read_urls(spec: str | Path) -> list[str]:
    """URLs from a text file (one a line; blank lines and ``#`` comments ignored)."""
    lines = Path(spec).read_text(encoding="utf-8").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]


def download_state(out_dir: Path) -> dict[str, dict]:
    """URL -> its latest log line."""
    state: dict[str, dict] = {}
    log = out_dir / LOG
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            state[rec["input_url"]] = rec
    return state


def _record(url: str, info: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    files = [d.get("filepath") for d in info.get("requested_downloads") or [] if d.get("filepath")]
    path = Path(files[0]) if files else Path(info.get("filepath") or info.get("_filename") or "")
    return {
        "input_url": url, "status": "ok", "file": path.name, "id": info.get("id"),
        "extractor": info.get("extractor_key") or info.get("extractor"), "title": info.get("title"),
        "channel": info.get("channel") or info.get("uploader"), "license": info.get("license"),
        "webpage_url": info.get("webpage_url") or url, "duration": info.get("duration"),
        "upload_date": info.get("upload_date"), "downloaded_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }  # fmt: skip


def download(urls: list[str], out_dir: str | Path, *, allow_file_urls: bool = False, progress: bool = True,
             log=print) -> dict[str, int]:  # fmt: skip
    """Download what is not yet downloaded; returns counts ``{"ok", "skipped", "failed"}``."""
    try:
        import yt_dlp
    except ModuleNotFoundError:
        raise ModuleNotFoundError("downloading needs yt-dlp: pip install 's2s-bench[download]'") from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = download_state(out_dir)
    counts = {"ok": 0, "skipped": 0, "failed": 0}

    class _Quiet:
        def debug(self, msg: str) -> None:
            pass

        info = warning = debug

        def error(self, msg: str) -> None:
            pass

    opts = {
        "outtmpl": str(out_dir / "%(extractor_key)s-%(id)s.%(ext)s"), "format": "bestaudio/best",
        "enable_file_urls": allow_file_urls, "noplaylist": False, "continuedl": True, "quiet": not progress,
        "noprogress": not progress, "logger": None if progress else _Quiet(), "restrictfilenames": True,
        "retries": 3,
    }  # fmt: skip
    with open(out_dir / LOG, "a", encoding="utf-8") as fh, yt_dlp.YoutubeDL(opts) as ydl:
        for url in urls:
            prev = state.get(url)
            if prev and prev.get("status") == "ok" and (out_dir / prev["file"]).exists():
                counts["skipped"] += 1
                continue
            if url.startswith("file:") and not allow_file_urls:
                rec = {"input_url": url, "status": "error", "error": "file:// URLs need --allow-file-urls"}
            else:
                try:
                    info = ydl.extract_info(url, download=True)
                    entries = info.get("entries") if info else None
                    rec = _record(url, list(entries)[0] if entries else info, out_dir)
                    if not (out_dir / rec["file"]).exists():
                        raise RuntimeError(f"yt-dlp reported {rec['file']!r} but it is not in {out_dir}")
                except Exception as exc:  # noqa: BLE001 - yt_dlp.utils.DownloadError and friends: one bad URL
                    rec = {"input_url": url, "status": "error", "error": f"{type(exc).__name__}: {exc}"[:500]}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            fh.flush()
            if rec["status"] == "ok":
                counts["ok"] += 1
            else:
                counts["failed"] += 1
                log(f"failed {url}: {rec['error']}")
    return counts
