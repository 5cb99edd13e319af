"""Telugu-safe text scoring: normalisation, grapheme clusters, WER, CER and chrF.

Why not Whisper's ``BasicTextNormalizer``: it replaces every mark (Unicode category M) with a space, so the vowel
signs, viramas and anusvara that make up Telugu syllables are deleted and words fall apart ("తెలుగు భాష" becomes
five tokens). Here marks are always kept; only punctuation (category P) and invisible format characters go.

Grapheme clusters come from the ``regex`` package's ``\\X`` (Unicode extended grapheme clusters). Since Unicode 15.1
those include the Indic conjunct rule GB9c: consonant + virama + consonant stays one cluster for the scripts whose
virama is a conjunct linker, Telugu among them. So ``ళ్తా`` (LLA, VIRAMA, TA, AA) is one cluster, ``కాలం`` is two
(కా, లం) and ``కలం`` is two (క, లం): one substitution apart. The tests pin this behaviour, so a ``regex`` release
with older Unicode tables would fail them instead of silently changing CER.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

ZERO_WIDTH = {"\u200c", "\u200d", "\u200b", "\u2060", "\ufeff"}
"""ZWNJ, ZWJ, ZWSP, word joiner, BOM: they change rendering (or nothing), never what is said."""

_TELUGU_DIGITS = {chr(0x0C66 + i): str(i) for i in range(10)}


def normalize_telugu(text: str) -> str:
    """Normalise Telugu (or mixed Telugu/Latin) text for WER/CER.

    Steps, in order: Unicode NFC; zero-width joiners/non-joiners and other format characters (category Cf)
    removed; Telugu digits ౦-౯ mapped to ASCII 0-9; every punctuation character (category P: ``. , ? ! । " ' -``
    ...) replaced by a space; Latin (and any cased script) lower-cased; whitespace collapsed. Marks (category M:
    vowel signs, virama, anusvara, visarga, candrabindu) are never touched. Symbols (category S, e.g. ``₹``) stay.
    """
    text = unicodedata.normalize("NFC", text)
    out = []
    for ch in text:
        if ch in ZERO_WIDTH:
            continue
        cat = unicodedata.category(ch)
        if cat == "Cf":
            continue
        if ch in _TELUGU_DIGITS:
            out.append(_TELUGU_DIGITS[ch])
        elif cat.startswith("P") or cat.startswith("Z") or ch in "\t\n\r\x0b\x0c":
            out.append(" ")
        else:
            out.append(ch)
    return " ".join("".join(out).lower().split())


def words(text: str, normalize: bool = True) -> list[str]:
    """Whitespace tokens of (normalised) text."""
    return (normalize_telugu(text) if normalize else text).split()


def graphemes(text: str) -> list[str]:
    """Extended grapheme clusters of ``text`` (spaces included as their own clusters); see the module docstring."""
    try:
        import regex
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "Grapheme-cluster CER needs the 'regex' package: pip install 's2s-bench[metrics]'"
        ) from None
    return regex.findall(r"\X", text)


@dataclass(frozen=True)
class EditCounts:
    """Levenshtein alignment of a hypothesis to a reference: ``errors / ref_len`` is the error rate."""

    substitutions: int
    deletions: int
    insertions: int
    hits: int
    ref_len: int
    hyp_len: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """Error rate; an empty reference gives 0.0 for an empty hypothesis and inf otherwise."""
        if self.ref_len == 0:
            return 0.0 if self.hyp_len == 0 else float("inf")
        return self.errors / self.ref_len

    def as_dict(self) -> dict:
        return {
            "sub": self.substitutions,
            "del": self.deletions,
            "ins": self.insertions,
            "hits": self.hits,
            "ref_len": self.ref_len,
            "hyp_len": self.hyp_len,
        }


def edit_counts(ref: list[str], hyp: list[str]) -> EditCounts:
    """Minimum-edit (Levenshtein, unit costs) alignment of two token lists, through jiwer.

    jiwer splits strings on whitespace, while our tokens are grapheme clusters (spaces among them) or already
    normalised words: each distinct token is mapped to a placeholder word first, so jiwer aligns exactly these
    tokens and never re-tokenises or normalises them (the Telugu-safe normalisation is ours, done before).
    """
    try:
        import jiwer
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "WER/CER need the 'jiwer' package: pip install 's2s-bench[metrics]'"
        ) from None
    n, m = len(ref), len(hyp)
    if n == 0 or m == 0:  # jiwer needs a non-empty reference; nothing to align either way
        return EditCounts(0, n, m, 0, n, m)
    ids: dict[str, str] = {}
    as_words = lambda tokens: " ".join(ids.setdefault(t, f"t{len(ids)}") for t in tokens)  # noqa: E731
    out = jiwer.process_words(as_words(ref), as_words(hyp))
    return EditCounts(out.substitutions, out.deletions, out.insertions, out.hits, n, m)


def word_errors(ref: str, hyp: str) -> EditCounts:
    """Word-level edit counts after :func:`normalize_telugu`."""
    return edit_counts(words(ref), words(hyp))


def char_errors(ref: str, hyp: str, unit: str = "grapheme") -> EditCounts:
    """Character-level edit counts after normalisation, over grapheme clusters or code points.

    Spaces between words count as characters (one per gap), as in the usual CER.
    """
    if unit not in ("grapheme", "codepoint"):
        raise ValueError(f"Expected argument `unit` to be 'grapheme' or 'codepoint' but got {unit!r}")
    r, h = normalize_telugu(ref), normalize_telugu(hyp)
    if unit == "grapheme":
        return edit_counts(graphemes(r), graphemes(h))
    return edit_counts(list(r), list(h))


def wer(ref: str, hyp: str) -> float:
    """Word error rate of one utterance (fraction, not percent)."""
    return word_errors(ref, hyp).rate


def cer(ref: str, hyp: str, unit: str = "grapheme") -> float:
    """Character error rate of one utterance over grapheme clusters (default) or code points (fraction)."""
    return char_errors(ref, hyp, unit).rate


def chrf_stats(ref: str, hyp: str, order: int = 6) -> list[tuple[int, int, int]]:
    """Per n-gram order (1..``order``): (matches, hyp n-grams, ref n-grams) over grapheme clusters.

    Spaces are removed before counting, as in chrF (Popović 2015). Summing these over a corpus and calling
    :func:`chrf_from_stats` gives corpus chrF.
    """
    from collections import Counter

    r = [g for g in graphemes(normalize_telugu(ref)) if not g.isspace()]
    h = [g for g in graphemes(normalize_telugu(hyp)) if not g.isspace()]
    out = []
    for n in range(1, order + 1):
        rc = Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
        hc = Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
        out.append((sum((rc & hc).values()), sum(hc.values()), sum(rc.values())))
    return out


def chrf_from_stats(stats: list[tuple[int, int, int]], beta: float = 2.0) -> float:
    """chrF (0-100) from :func:`chrf_stats`: F-beta of n-gram precision and recall averaged over orders.

    Orders for which neither side has n-grams are left out of the average; an empty reference and empty
    hypothesis give 100, an empty hypothesis against a non-empty reference 0.
    """
    precs, recs = [], []
    for match, hyp_n, ref_n in stats:
        if hyp_n == 0 and ref_n == 0:
            continue
        precs.append(match / hyp_n if hyp_n else 0.0)
        recs.append(match / ref_n if ref_n else 0.0)
    if not precs:
        return 100.0
    p, r = sum(precs) / len(precs), sum(recs) / len(recs)
    if p == 0 and r == 0:
        return 0.0
    b2 = beta * beta
    return 100.0 * (1 + b2) * p * r / (b2 * p + r)


def chrf(ref: str, hyp: str, order: int = 6, beta: float = 2.0) -> float:
    """Sentence chrF (0-100, higher is better) over grapheme clusters of normalised text."""
    return chrf_from_stats(chrf_stats(ref, hyp, order), beta)
