"""The definitions printed at the end of every report.

Latency definitions are read from the docstring of ``harness.latency`` (its ``- ``name``: text`` bullets), the one
place they are written; quality metrics and report terms are defined here.
"""

from __future__ import annotations

import re

_REPORT_TERMS = {
    "[lo, hi]": "95% confidence interval: seeded percentile bootstrap over the per-utterance values (for the mean "
    "and p50 the same interval as the run's summary, harness.stats)",
    "n": "number of utterances with a value for that metric (failed or never-audible utterances have none)",
    "answered": "turns with an audible answer (ok or truncated) / all turns, with a 95% Wilson interval",
    "TTFA KM": "Kaplan-Meier estimate of TTFA over all turns: answered turns at their TTFA, the others censored at "
    "their wait limit; 'not reached' when fewer turns were answered than the quantile needs",
    "failures": "utterances that crashed, hung, timed out without an audible answer, had bad input or whose "
    "backend did not load (kind and count)",
    "input lagged": "utterances whose pushes fell behind the speaker by more than input_lag_flag_ms (a backend "
    "whose push() blocks)",
    "random weights: latency only": "the backend ran random weights: its latency is real, its output quality "
    "is meaningless and is not shown",
    "Pareto front": "backends not beaten on both TTFA p50 and the quality metric by another backend",
    "time clock": "every time is the harness's monotonic clock (time.perf_counter_ns); backends never time "
    "themselves",
}

_QUALITY = {
    "dnsmos_p808": "DNSMOS P.808 (speechmos's model_v8.onnx): one overall MOS as an ITU-T P.808 absolute "
    "category rating listening test would give it (1-5, higher is better); a different model from the P.835 "
    "scores, not one of them",
    "dnsmos_sig": "DNSMOS P.835 SIG (speechmos's sig_bak_ovr.onnx): quality of the speech signal (1-5, higher "
    "is better)",
    "dnsmos_bak": "DNSMOS P.835 BAK (sig_bak_ovr.onnx): how intrusive the background noise is (1-5, higher is "
    "better)",
    "dnsmos_ovrl": "DNSMOS P.835 OVRL (sig_bak_ovr.onnx): overall quality (1-5, higher is better)",
    "dnsmos": "DNSMOS (speechmos, non-intrusive MOS predictors, 1-5, higher is better): P.835 SIG/BAK/OVRL from "
    "sig_bak_ovr.onnx and the P.808 overall score from model_v8.onnx",
    "wer": "word error rate of an ASR judge's transcript of the response against the reference text (Telugu-safe "
    "normalisation: NFC, Unicode punctuation removed, marks kept); lower is better",
    "cer": "character error rate over grapheme clusters, same normalisation as WER; lower is better",
    "speaker": "cosine similarity of speaker embeddings (resemblyzer) between input and response; higher is closer",
    "spk": "cosine similarity of speaker embeddings (resemblyzer) between input and response; higher is closer",
    "stoi": "short-time objective intelligibility (0-1, higher is better)",
    "pesq": "PESQ wide-band (1-4.5, higher is better), reference-based",
    "chrf": "character n-gram F-score of the response text against the expected answer; higher is better",
}


def latency_definitions() -> dict[str, str]:
    """Latency metric name -> definition, parsed from the bullets of ``harness.latency``'s docstring."""
    from .. import latency

    return docstring_definitions(latency.__doc__ or "")


def turn_definitions() -> dict[str, str]:
    """Turn-taking metric name -> definition, parsed from the bullets of ``harness.turns.metrics``'s docstring."""
    from ..turns import metrics

    return docstring_definitions(metrics.__doc__ or "")


def docstring_definitions(doc: str) -> dict[str, str]:
    """``- ``name``: text`` bullets (continued on indented lines) of a docstring, as name -> text."""
    defs: dict[str, str] = {}
    name = None
    for line in doc.splitlines():
        bullet = re.match(r"^- (``[^:]+``[^:]*):\s*(.*)$", line)
        if bullet:
            name = bullet.group(1).replace("``", "")
            defs[name] = bullet.group(2).strip().replace("``", "")
        elif name and line.startswith("  ") and line.strip():
            defs[name] += " " + line.strip().replace("``", "")
        else:
            name = None
    return defs


DOCS_BEGIN = "<!-- latency definitions: generated from harness/latency.py by `python -m harness.report.definitions FILE` -->"
DOCS_END = "<!-- end of latency definitions -->"


def latency_markdown(names: list[str] | None = None) -> str:
    """The latency definitions (all, or ``names`` in that order) as the Markdown table that docs/latency.md and
    the README carry between :data:`DOCS_BEGIN` and :data:`DOCS_END` (a test keeps them equal)."""
    defs = latency_definitions()
    rows = [(name, defs[name]) for name in (names or list(defs))]
    lines = ["| name | definition |", "|---|---|"]
    lines += [f"| `{name}` | {text.replace('|', '/')} |" for name, text in rows]
    return "\n".join([DOCS_BEGIN, *lines, DOCS_END])


TURNS_BEGIN = (
    "<!-- turn-taking definitions: generated from harness/turns/metrics.py by "
    "`python -m harness.report.definitions --turns FILE` -->"
)
TURNS_END = "<!-- end of turn-taking definitions -->"


def turns_markdown() -> str:
    """Every turn-taking definition as the Markdown table docs/turn-taking.md carries (a test keeps them equal)."""
    lines = ["| name | definition |", "|---|---|"]
    lines += [f"| `{name}` | {text.replace('|', '/')} |" for name, text in turn_definitions().items()]
    return "\n".join([TURNS_BEGIN, *lines, TURNS_END])


def refresh_turn_docs(paths: list[str]) -> None:
    """Rewrite the generated turn-taking block of each Markdown file in ``paths``."""
    from pathlib import Path

    for path in map(Path, paths):
        text = path.read_text(encoding="utf-8")
        start, end = text.index(TURNS_BEGIN), text.index(TURNS_END) + len(TURNS_END)
        path.write_text(text[:start] + turns_markdown() + text[end:], encoding="utf-8")


def quality_definition(name: str) -> str:
    """A one-line definition of a quality metric by its name (prefix match), or a pointer to its plugin."""
    low = name.lower()
    for prefix, text in _QUALITY.items():
        if low.startswith(prefix):
            return text
    return "defined by the metric plugin that wrote it (see docs/metrics.md)"


def all_definitions(quality_names: list[str], turns: bool = False) -> list[tuple[str, str]]:
    """(term, definition) rows for the report: latency, turn-taking (``turns``), the quality metrics present, then
    report terms."""
    rows = list(latency_definitions().items())
    if turns:
        rows += list(turn_definitions().items())
    rows += [(name, quality_definition(name)) for name in quality_names]
    rows += list(_REPORT_TERMS.items())
    return rows


def refresh_docs(paths: list[str]) -> None:
    """Rewrite the generated block of each Markdown file in ``paths`` (the rows it already names, in order)."""
    from pathlib import Path

    for path in map(Path, paths):
        text = path.read_text(encoding="utf-8")
        start, end = text.index(DOCS_BEGIN), text.index(DOCS_END) + len(DOCS_END)
        names = re.findall(r"^\| `([^`]+)` \|", text[start:end], flags=re.M)
        path.write_text(text[:start] + latency_markdown(names) + text[end:], encoding="utf-8")


if (
    __name__ == "__main__"
):  # python -m harness.report.definitions [FILE.md ...]: print, or refresh those files
    import sys

    if sys.argv[1:2] == ["--turns"]:
        refresh_turn_docs(sys.argv[2:]) if sys.argv[2:] else print(turns_markdown())
    elif sys.argv[1:]:
        refresh_docs(sys.argv[1:])
    else:
        print(latency_markdown())
