"""The project's own Telugu text: everyday sentences, question -> answer pairs, code-switched sentences.

Files live in ``harness/datasets/text/`` (UTF-8; ``#`` lines are comments). Word lists for training speech come from
Debian's ``hunspell-te`` dictionary when it is installed.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

TEXT_DIR = Path(__file__).parent / "text"
HUNSPELL_TE = Path("/usr/share/hunspell/te_IN.dic")

TELUGU_BLOCK = (0x0C00, 0x0C7F)
ALLOWED_PUNCTUATION = ".,?!"


def is_telugu_char(ch: str) -> bool:
    return TELUGU_BLOCK[0] <= ord(ch) <= TELUGU_BLOCK[1]


def _lines(name: str) -> list[str]:
    path = TEXT_DIR / name
    return [
        ln.strip()
        for ln in path.read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.startswith("#")
    ]


@cache
def sentences() -> tuple[str, ...]:
    """Everyday Telugu sentences (Telugu script only, numbers as words)."""
    return tuple(_lines("sentences_te.txt"))


@cache
def sentence_topics() -> dict[str, str]:
    """Sentence -> topic (the ``# topic`` header above it)."""
    topic, out = "", {}
    for ln in (TEXT_DIR / "sentences_te.txt").read_text(encoding="utf-8").splitlines():
        if ln.startswith("# ") and len(ln) < 40:
            topic = ln[2:].strip()
        elif ln.strip() and not ln.startswith("#"):
            out[ln.strip()] = topic
    return out


@cache
def qa_pairs() -> tuple[tuple[str, str], ...]:
    """(question, answer) pairs in conversational Telugu."""
    out = []
    for ln in _lines("qa_te.tsv"):
        parts = ln.split("\t")
        if len(parts) != 2:
            raise ValueError(f"{TEXT_DIR / 'qa_te.tsv'}: expected 'question<TAB>answer', got {ln!r}")
        out.append((parts[0].strip(), parts[1].strip()))
    return tuple(out)


@cache
def code_switched() -> tuple[str, ...]:
    """Telugu sentences with English words in Latin script."""
    return tuple(_lines("code_switched_te_en.txt"))


def text_fingerprint() -> str:
    """Short hash of all text files: a change makes cached built sets stale."""
    h = hashlib.sha256()
    for path in sorted(TEXT_DIR.glob("*")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


_TELUGU_WORD = re.compile(r"^[\u0C00-\u0C7F]{2,16}$")


@cache
def hunspell_words(path: str | None = None) -> tuple[str, ...]:
    """Telugu words from the hunspell dictionary (affix flags dropped), or () when it is not installed."""
    dic = Path(path) if path else HUNSPELL_TE
    if not dic.exists():
        return ()
    words = []
    for i, ln in enumerate(dic.read_text(encoding="utf-8", errors="replace").splitlines()):
        if i == 0 and ln.strip().isdigit():
            continue  # hunspell's first line is the entry count
        word = ln.split("/", 1)[0].strip()
        if _TELUGU_WORD.match(word) and not word.endswith("\u0c4d"):  # skip bare-virama fragments
            words.append(word)
    return tuple(words)


def sentence_words() -> tuple[str, ...]:
    """Words of the project's sentences (fallback vocabulary when hunspell-te is not installed)."""
    seen: dict[str, None] = {}
    for s in sentences() + tuple(t for pair in qa_pairs() for t in pair):
        for w in re.findall(r"[\u0C00-\u0C7F]+", s):
            seen.setdefault(w, None)
    return tuple(seen)
