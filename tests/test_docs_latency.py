"""The latency definitions are written once (harness/latency.py's docstring): docs and README carry that text."""

import dataclasses
import json
import re
from pathlib import Path

from harness import latency
from harness.report.definitions import DOCS_BEGIN, DOCS_END, latency_definitions, latency_markdown
from harness.runner import RunSettings
from harness.turns.endpointer import EndpointerSettings

ROOT = Path(__file__).resolve().parents[1]


def _block(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index(DOCS_BEGIN)
    return text[start : text.index(DOCS_END, start) + len(DOCS_END)]


def test_docs_latency_page_carries_every_definition_verbatim():
    assert _block(ROOT / "docs" / "latency.md") == latency_markdown(), (
        "docs/latency.md is stale: run `python -m harness.report.definitions docs/latency.md README.md`"
    )


def test_readme_definitions_are_the_docstrings_words():
    block = _block(ROOT / "README.md")
    names = re.findall(r"^\| `([^`]+)` \|", block, flags=re.M)
    assert "ttfa_ms" in names and "speech_end" in names
    assert block == latency_markdown(names)


def test_every_summarised_metric_is_defined():
    defined = " ".join(f"{name}: {text}" for name, text in latency_definitions().items())
    for metric in (*latency.LATENCY_METRICS, "rtfx", "answer_rate", "ttfa_km", "marks", "status"):
        assert metric in defined, f"{metric} has no definition in harness/latency.py's docstring"


def test_run_format_lists_exactly_the_settings_that_exist():
    text = (ROOT / "docs" / "run-format.md").read_text(encoding="utf-8")
    start = text.index("{", text.index('"settings": {'))
    example, _ = json.JSONDecoder().raw_decode(text, start)  # valid JSON, nested objects included
    assert set(example) == {f.name for f in dataclasses.fields(RunSettings)}
    assert set(example["endpointer"]) == {f.name for f in dataclasses.fields(EndpointerSettings)}
