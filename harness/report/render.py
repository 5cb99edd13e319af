"""Write a report: ``report.md`` (+ ``img/*.png``), a self-contained ``report.html`` (images as base64 data URIs,
inline CSS, no scripts), ``utterances.csv`` and a versioned ``report.json`` (lm-eval style: the numbers behind it).
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .. import __version__
from . import plots
from .definitions import all_definitions
from .runs import RunData, load_run_folder
from .tables import (
    LATENCY_ONLY,
    failures_frame,
    quality_metric_names,
    run_info_frame,
    speech_end_frame,
    summary_frame,
    utterance_frame,
)
from .turns import has_turns, turns_frame, turns_note

REPORT_SCHEMA = "s2s-bench.report/1"
MAX_UTTERANCE_ROWS = 400  # in report.md / report.html; the CSV has every row
MAX_QUALITY_PLOTS = 4


@dataclass
class Section:
    title: str
    text: str = ""
    table: pd.DataFrame | None = None
    image: bytes | None = None
    image_name: str = ""
    image_alt: str = ""


def _md_escape(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        value = f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, index: bool = False) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (no extra dependency)."""
    if index:
        frame = frame.reset_index().rename(columns={"index": ""})
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(_md_escape(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_md_escape(v) for v in row) + " |")
    return "\n".join(lines)


def _sections(runs: list[RunData], csv_name: str, ttfa_axis: str = "auto") -> list[Section]:
    quality = quality_metric_names(runs)
    out = [Section("Summary", _summary_note(runs), summary_frame(runs))]
    out.append(Section("End of speech", _speech_end_note(runs), speech_end_frame(runs)))
    if has_turns(runs):
        out.append(Section("Turn-taking", turns_note(runs), turns_frame(runs)))
    cdf = plots.latency_cdf(runs, ttfa_axis=ttfa_axis)
    log_note = (
        " The TTFA axis is logarithmic (the backends' medians differ more than 10x; `--ttfa-axis linear` to change)."
        if plots.log_ttfa_wanted(runs, ttfa_axis)
        else ""
    )
    out.append(
        Section(
            "Time to first audio",
            "Over all turns: a curve levels off at its backend's answer rate (turns never answered never reach it)."
            + log_note
            if cdf
            else "No backend produced audible output.",
            image=cdf,
            image_name="ttfa_cdf.png",
            image_alt="TTFA cumulative distribution per backend",
        )
    )
    stages = plots.stage_breakdown(runs)
    out.append(
        Section(
            "Stage breakdown",
            "Mean time from the end of speech to each stage mark; the last segment ends at first audio."
            if stages
            else "No backend emitted stage marks (cascades such as the `cascade` backend emit them).",
            image=stages,
            image_name="stages.png",
            image_alt="stage breakdown bars",
        )
    )
    shown = 0
    for name in plots.plotted_quality(quality):
        png = plots.quality_vs_ttfa(runs, name, ttfa_axis=ttfa_axis)
        if png and shown < MAX_QUALITY_PLOTS:
            shown += 1
            dnsmos = (
                f" DNSMOS is plotted once, by {plots.quality_label(name)}; its other scores are in the summary."
                if name.startswith("dnsmos_")
                else ""
            )
            out.append(
                Section(
                    f"{name} vs TTFA",
                    "Error bars: 95% confidence intervals of the TTFA median and of the quality value. Axes: TTFA "
                    "from zero (or log), quality over the metric's full scale (or from zero), so gaps are not "
                    "magnified. Dashed: the Pareto front (no other backend is both faster and better)."
                    + dnsmos
                    + log_note,
                    image=png,
                    image_name=f"pareto_{name}.png",
                    image_alt=f"{name} against TTFA p50",
                )
            )
    if not shown:
        why = (
            "only random-weight backends (latency only)" if quality else "no quality suite ran in these runs"
        )
        out.append(Section("Quality vs TTFA", f"No quality-vs-latency plot: {why}."))
    commits = {json.dumps(r.meta.get("git") or {}, sort_keys=True) for r in runs}
    if (
        len(commits) > 1
    ):  # runs at several commits: the headline metric per commit, as `s2s-bench history` draws it
        from .history import history_plot, points

        png = history_plot(points(runs), "ttfa_ms")
        if png:
            out.append(
                Section(
                    "TTFA per commit",
                    "Median TTFA with its 95% CI per commit, one line per backend (`s2s-bench history` draws "
                    "every metric).",
                    image=png,
                    image_name="history_ttfa.png",
                    image_alt="TTFA per commit",
                )
            )
    fails = failures_frame(runs)
    if not fails.empty:
        out.append(Section("Failures", "", fails))
    utts = utterance_frame(runs)
    note = f"Every value per utterance (ms unless named otherwise); all rows are in `{csv_name}`."
    if len(utts) > MAX_UTTERANCE_ROWS:
        note += f" Showing the first {MAX_UTTERANCE_ROWS} of {len(utts)} rows."
    out.append(Section("Per utterance", note, utts.head(MAX_UTTERANCE_ROWS).round(2)))
    out.append(Section("Runs: machine, versions, settings", "", run_info_frame(runs)))
    defs = pd.DataFrame(all_definitions(quality, turns=has_turns(runs)), columns=["term", "definition"])
    out.append(Section("Definitions", "", defs))
    return out


def _speech_end_note(runs: list[RunData]) -> str:
    vad = next((r.meta.get("vad") for r in runs if r.meta.get("vad")), None)
    how = (
        f"{vad['method']} {vad.get('version', '')} ({', '.join(f'{k}={v}' for k, v in vad['params'].items())})"
        if vad
        else "not recorded in these runs: re-derived from their inputs where available, else the end of file"
    )
    return (
        "Latency is measured from the end of the user's speech (the input's last voiced sample on the speaker's "
        f"clock), not from the end of the file. VAD: {how}. The trailing silence below is what TTFA from the end "
        "of the file would hide."
    )


def _summary_note(runs: list[RunData]) -> str:
    notes = [
        "Latency in ms from the end of speech: value [95% CI] n=samples; TTFA percentiles cover answered turns "
        "only, so read them with the answer rate. TTFA KM: Kaplan-Meier over all turns, unanswered ones censored "
        "at the wait limit ('not reached': too few answers). Lower is better for latency, WER and CER."
    ]
    if any(run.latency_only(k) for run in runs for k in run.backend_keys):
        notes.append(
            f"Backends marked *{LATENCY_ONLY}* ran random weights: only their latency means anything."
        )
    mixed = mixed_runs(runs)
    if mixed:
        notes.append(
            "**Warning: these runs were measured differently** ("
            + "; ".join(mixed)
            + "): their rows are not comparable with each other, only within a run."
        )
    if any(run.meta.get("status") != "complete" for run in runs):
        notes.append(
            "**Some runs are not complete** (status shown under Runs; utterances not run are counted in the "
            "table); their numbers cover finished utterances only."
        )
    degraded = [r for r in runs if ((r.meta.get("data") or {}).get("identity") or {}).get("degraded")]
    for run in degraded:
        identity = run.meta["data"]["identity"]
        notes.append(
            f"**Run {run.run_id} used a DEGRADED data set** ({identity.get('name')}: "
            f"{identity.get('degraded_reason')}): its utterances differ from the reference set's, so its numbers "
            "cannot be compared with runs that have every voice."
        )
    return " ".join(notes)


def mixed_runs(runs: list[RunData]) -> list[str]:
    """What differs between runs shown in one table: pacing and the other measuring settings, the data (name and
    utterance ids) and the machine class. Empty for one run or runs measured alike."""
    from ..gate import COMPARED_SETTINGS, _data_identity, machine_class

    if len(runs) < 2:
        return []
    first, out = runs[0], []
    for run in runs[1:]:
        fs, rs = first.meta.get("settings") or {}, run.meta.get("settings") or {}
        for key in COMPARED_SETTINGS:
            if fs.get(key) != rs.get(key):
                out.append(f"{key} {fs.get(key)} in {first.run_id} vs {rs.get(key)} in {run.run_id}")
        if _data_identity(first.meta) != _data_identity(run.meta):
            fd, rd = first.meta.get("data") or {}, run.meta.get("data") or {}
            out.append(
                f"data {fd.get('name')} n={fd.get('n')} in {first.run_id} vs {rd.get('name')} n={rd.get('n')} in "
                f"{run.run_id}"
                + (
                    " (other utterances)"
                    if (fd.get("name"), fd.get("n")) == (rd.get("name"), rd.get("n"))
                    else ""
                )
            )
        if machine_class(first.meta) != machine_class(run.meta):
            out.append(
                f"machine {_machine_label(first.meta)} in {first.run_id} vs {_machine_label(run.meta)} in {run.run_id}"
            )
    return out


def _machine_label(meta: dict) -> str:
    from ..gate import machine_class

    cpu, cpu_id, count, gpu = machine_class(meta)
    return f"{cpu} ({cpu_id or 'generation not recorded'}, {count} cores{', ' + gpu if gpu else ''})"


def _title(runs: list[RunData], title: str | None) -> str:
    if title:
        return title
    data = {(r.meta.get("data") or {}).get("name") for r in runs}
    return f"s2s-bench report: {', '.join(sorted(str(d) for d in data))}"


def render_markdown(title: str, runs: list[RunData], sections: list[Section], img_dir: str) -> str:
    parts = [f"# {title}", "", _preamble(runs), ""]
    for s in sections:
        parts += [f"## {s.title}", ""]
        if s.text:
            parts += [s.text, ""]
        if s.image:
            parts += [f"![{s.image_alt}]({img_dir}/{s.image_name})", ""]
        if s.table is not None:
            parts += [markdown_table(s.table, index=s.title.startswith("Runs")), ""]
    return "\n".join(parts)


def _preamble(runs: list[RunData]) -> str:
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    ids = ", ".join(f"`{r.run_id}` ({r.meta.get('suite')}, {len(r.backend_keys)} backends)" for r in runs)
    return f"Generated {when} by s2s-bench {__version__} from {len(runs)} run(s): {ids}."


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1300px;color:#222;
padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;height:auto;border:1px solid #eee}.note{color:#555}
"""


def _plain(text: str) -> str:
    """Markdown emphasis and code marks removed, for the HTML page."""
    return text.replace("`", "").replace("*", "")


def render_html(title: str, runs: list[RunData], sections: list[Section]) -> str:
    body = [f"<h1>{html.escape(title)}</h1>", f"<p class='note'>{html.escape(_plain(_preamble(runs)))}</p>"]
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            body.append(f"<p class='note'>{html.escape(_plain(s.text))}</p>")
        if s.image:
            data = base64.b64encode(s.image).decode("ascii")
            body.append(f"<img alt='{html.escape(s.image_alt)}' src='data:image/png;base64,{data}'>")
        if s.table is not None:
            page = s.table.to_html(index=s.title.startswith("Runs"), escape=True, na_rep="", border=0)
            if s.title == "Summary":  # value on one line, [CI] n= on the next: keeps the columns narrow
                page = page.replace(" [", "<br>[")
            body.append(page)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<link rel='icon' href='data:,'><title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def report_json(runs: list[RunData], summary: pd.DataFrame) -> dict:
    """Versioned machine-readable companion: run ids, summaries as recorded, and the rendered summary rows."""
    return {
        "schema": REPORT_SCHEMA,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "s2s_bench": __version__,
        "runs": [
            {
                "run_id": r.run_id,
                "source": r.source,
                "suite": r.meta.get("suite"),
                "data": r.meta.get("data"),
                "backends": r.meta.get("backends"),
                "summary": r.meta.get("summary"),
            }
            for r in runs
        ],
        "summary_table": summary.to_dict(orient="records"),
    }


def build_report(run_dirs, out_dir, *, title: str | None = None, ttfa_axis: str = "auto") -> dict[str, Path]:
    """Load ``run_dirs``, write every report file into ``out_dir`` and return ``{kind: path}``; ``ttfa_axis``:
    ``auto`` (log when the backends' TTFA medians differ more than 10x), ``linear`` or ``log``."""
    if not run_dirs:
        raise FileNotFoundError("No run folder given")
    runs = [load_run_folder(d) for d in run_dirs]
    out = Path(out_dir)
    (out / "img").mkdir(parents=True, exist_ok=True)
    csv_path = out / "utterances.csv"
    utterance_frame(runs).to_csv(csv_path, index=False)
    sections = _sections(runs, csv_path.name, ttfa_axis)
    for s in sections:
        if s.image:
            (out / "img" / s.image_name).write_bytes(s.image)
    name = _title(runs, title)
    md = out / "report.md"
    md.write_text(render_markdown(name, runs, sections, "img"), encoding="utf-8")
    page = out / "report.html"
    page.write_text(render_html(name, runs, sections), encoding="utf-8")
    js = out / "report.json"
    js.write_text(
        json.dumps(report_json(runs, sections[0].table), indent=1, default=str) + "\n", encoding="utf-8"
    )
    return {"markdown": md, "html": page, "csv": csv_path, "json": js}
