#!/usr/bin/env python3
"""Open a report.html in real headless Chromium, check it, and save a screenshot.

    python scripts/screenshot_report.py REPORT.html OUT.png [--width 1280] [--max-height 2400]

Two Chromium launches, each with a fresh ``--user-data-dir`` and no network features:

1. a checking copy of the page (a small script prepended to ``<head>``) reports, after the load event, how many
   ``<img>`` elements decoded (``naturalWidth > 0``), any uncaught error or failed resource, and the page height;
2. the page itself is screenshotted at that height (capped by ``--max-height``) with console logging to stderr;
   any console message from the page (a report has no scripts of its own) counts as an error.

Exit code 0 when every image rendered and nothing was logged, 1 otherwise (the problems are printed), 2 when
Chromium is missing. Debian: ``apt-get install -y chromium``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)

_CHECK_SCRIPT = """<script>
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    var t = e.target;
    errors.push(t && t !== window ? 'failed to load ' + (t.src || t.href || t.tagName) : String(e.message));
  }, true);
  var origError = console.error;
  console.error = function () { errors.push(Array.prototype.join.call(arguments, ' ')); origError.apply(console, arguments); };
  window.addEventListener('load', function () {
    var imgs = Array.prototype.slice.call(document.images);
    var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
    var result = {images: imgs.length, images_ok: ok, errors: errors,
                  height: Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)};
    var marker = document.createElement('pre');
    marker.id = 's2s-check';
    marker.textContent = 'S2S_CHECK' + JSON.stringify(result) + 'S2S_END';
    document.body.appendChild(marker);
  });
})();
</script>"""

_CONSOLE_RE = re.compile(r":CONSOLE(?::\d+)?\]\s*(.*)$")


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium binary: ``explicit``, else ``chromium`` / ``chromium-browser`` / ``google-chrome`` on PATH."""
    if explicit:
        return explicit if Path(explicit).exists() or shutil.which(explicit) else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _launch(chromium: str, args: list[str], url: str, timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="s2s-chromium-") as profile:
        cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", *args, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def check_and_screenshot(
    html_path: Path,
    png_path: Path,
    *,
    chromium: str,
    width: int = 1280,
    max_height: int | None = None,
    timeout: float = 90.0,
) -> dict:
    """Check ``html_path`` in Chromium and write ``png_path``; return the findings (``problems`` empty = good)."""
    html_path = html_path.resolve()
    page = html_path.read_text(encoding="utf-8")
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="s2s-check-") as tmp:
        probe = Path(tmp) / html_path.name
        probed, hits = re.subn(r"<head>", "<head>" + _CHECK_SCRIPT, page, count=1)
        probe.write_text(probed if hits else _CHECK_SCRIPT + page, encoding="utf-8")
        dom = _launch(chromium, ["--dump-dom", "--virtual-time-budget=5000"], probe.as_uri(), timeout)
    found = re.search(r"S2S_CHECK(\{.*?\})S2S_END", dom.stdout, re.S)
    if not found:
        problems.append(
            f"the page did not finish loading in Chromium (exit {dom.returncode}): {dom.stderr[-500:]}"
        )
        result = {"images": 0, "images_ok": 0, "errors": [], "height": 0}
    else:
        result = json.loads(found.group(1))
    if result["images"] == 0:
        problems.append("the page has no images (plots missing)")
    if result["images_ok"] < result["images"]:
        problems.append(f"only {result['images_ok']} of {result['images']} images rendered")
    problems += [f"page error: {e}" for e in result["errors"]]
    height = max(600, int(result["height"]) + 20)
    if max_height:
        height = min(height, max_height)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    shot = _launch(
        chromium,
        [
            "--enable-logging=stderr",
            "--v=0",
            f"--window-size={width},{height}",
            f"--screenshot={png_path.resolve()}",
        ],
        html_path.as_uri(),
        timeout,
    )
    console = [m.group(1) for line in shot.stderr.splitlines() if (m := _CONSOLE_RE.search(line))]
    problems += [f"console: {c}" for c in console]
    if not png_path.exists() or png_path.stat().st_size == 0:
        problems.append(f"Chromium wrote no screenshot (exit {shot.returncode}): {shot.stderr[-500:]}")
    return {**result, "console": console, "screenshot_height": height, "problems": problems}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("html", type=Path, help="report.html to open")
    p.add_argument("png", type=Path, help="where to write the screenshot")
    p.add_argument("--width", type=int, default=1280, help="viewport width in px")
    p.add_argument(
        "--max-height", type=int, default=None, help="cap the screenshot height (default: whole page)"
    )
    p.add_argument("--chromium", default=None, help="Chromium binary (default: chromium on PATH)")
    args = p.parse_args(argv)
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print(
            "Chromium not found: install it (Debian: apt-get install -y chromium) or pass --chromium PATH",
            file=sys.stderr,
        )
        return 2
    if not args.html.exists():
        print(f"{args.html} does not exist", file=sys.stderr)
        return 2
    found = check_and_screenshot(
        args.html, args.png, chromium=chromium, width=args.width, max_height=args.max_height
    )
    print(
        f"{args.html}: {found['images_ok']}/{found['images']} images rendered, "
        f"{len(found['console'])} console messages; screenshot {args.png} ({args.width}x{found['screenshot_height']})"
    )
    for problem in found["problems"]:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if found["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
