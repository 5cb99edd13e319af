"""Regression gates: compare a candidate run with a baseline, metric by metric, and say what got worse.

A rule is ``METRIC[.STAT][@REFERENCE]:[+|-]THRESHOLD[,FLOOR]``:

- ``METRIC``: a latency metric of harness.latency (``ttfa``, ``ttfb``, ``ttfa_eof``, ``rtf``, ``stall_count``,
  ``stall_ms``, ``input_lag``, ``audio_start``, ``audio_end``, ``simuleval_start_offset``, ``simuleval_atd``, ...),
  ``mark.NAME`` (a stage mark, e.g. ``mark.asr_final``), a quality metric from ``scores.jsonl`` (``wer``,
  ``cer``, ``dnsmos_ovrl``, ...), ``failed`` (1 per failed utterance, 0 otherwise: its mean is the failure
  rate, e.g. ``failed:+5pt``) or ``unanswered`` (1 per turn without an audible answer: no_answer or failed).
  ``STAT`` is ``p50``, ``p90``, ``p95``, ``p99``, ``mean``, ``min`` or ``max`` (default ``p50`` for latency
  metrics, ``mean`` for quality metrics).
- ``@REFERENCE`` makes it a same-run ratio: the candidate backend's statistic divided by the reference backend's,
  both from the same (interleaved) run, compared with the same ratio in the baseline. ``REFERENCE`` is a backend
  key (``loopback:delay_ms=80``) or a backend name that is unique in the run (``loopback``).
- ``THRESHOLD``: how big a change must be to count: ``10%`` (relative), ``20ms`` (absolute, ms metrics),
  ``0.5pt`` (absolute percentage points: 0.005 for a metric stored as a fraction, 0.5 when its unit is ``%``)
  or a bare number (absolute, in the metric's unit). The sign says which direction is worse: ``+`` (higher is
  worse), ``-`` (lower is worse); without a sign the metric's own direction is used.
- ``FLOOR`` (optional): the absolute change must also exceed this (same units as a threshold, not ``%``).

A metric is *worse* only when the change passes the threshold, a two-sided Mann-Whitney U test on the
per-utterance samples is significant (p < alpha), and the change passes the floor (asv's rule). Verdicts:
``worse``, ``better`` (the mirror), ``~`` (past the threshold but not significant or under the floor),
``same`` (within the threshold), ``x`` (not comparable: different suite, data, settings, machine class or
backend options, or the metric is missing on one side). A merged run whose shards ran on different machine
classes (``s2s-bench merge``) is ``x`` for every latency rule, on either side, even with ``allow_machine_change``;
quality rules may compare it. A single shard (``run --shard I/N``) is ``x`` against anything but the same shard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .executors.merge import mixed_machine_note
from .gate_files import (  # noqa: F401 - part of the gate's interface
    BASELINE_SCHEMA,
    GateUsageError,
    load_baseline,
    load_candidate,
    save_baseline,
)
from .report.runs import LATENCY_METRICS, RunData
from .results import machine_class as machine_class_of_machine

DEFAULT_RULES = ("ttfa.p50:+10%,10ms", "ttfa.p95:+20%,20ms")
DEFAULT_ALPHA = 0.05

STATS = ("p50", "p90", "p95", "p99", "mean", "min", "max")
_ALIASES = {
    "ttfa": "ttfa_ms",
    "ttfb": "ttfb_ms",
    "ttfa_eof": "ttfa_eof_ms",
    "ttfb_eof": "ttfb_eof_ms",
    "input_lag": "input_lag_ms",
    "audio_start": "audio_start_from_source_start_ms",
    "audio_end": "audio_end_from_speech_end_ms",
    "simuleval_start_offset": "simuleval_start_offset_ms",
    "simuleval_end_offset": "simuleval_end_offset_ms",
    "simuleval_atd": "simuleval_atd_ms",
    "stalls": "stall_count",
}
_RENAMED = {
    "start_offset": "audio_start (user-perceived) or simuleval_start_offset (SimulEval's StartOffset)",
    "end_offset": "audio_end (user-perceived) or simuleval_end_offset (SimulEval's EndOffset)",
}
#: Quality metrics where a higher value is better (unless the run's summary says otherwise).
_HIGHER_IS_BETTER_PREFIXES = (
    "dnsmos",
    "utmos",
    "mos",
    "pesq",
    "stoi",
    "estoi",
    "si_sdr",
    "sisdr",
    "chrf",
    "spk",
    "speaker",
)
#: Run settings that change what is measured; a difference makes runs not comparable.
COMPARED_SETTINGS = ("pacing", "chunk_ms", "concurrency", "min_stall_ms", "vad")

_RULE_RE = re.compile(
    r"^(?P<metric>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)?)"
    r"(?:\.(?P<stat>p50|p90|p95|p99|mean|min|max))?"
    r"(?:@(?P<ref>.+))?"
    r":(?P<sign>[+-])?(?P<thr>\d+(?:\.\d+)?)(?P<thr_unit>%|pt|ms)?"
    r"(?:,(?P<floor>\d+(?:\.\d+)?)(?P<floor_unit>pt|ms)?)?$"
)


@dataclass(frozen=True)
class Rule:
    """One parsed gate rule (see the module docstring for the spelling)."""

    text: str
    metric: str
    stat: str
    reference: str | None
    direction: int | None  # +1: higher is worse, -1: lower is worse, None: the metric's own direction
    threshold: float
    threshold_unit: str  # "%", "pt", "ms" or "" (metric units)
    floor: float = 0.0
    floor_unit: str = ""

    @classmethod
    def parse(cls, text: str) -> Rule:
        m = _RULE_RE.match(text.strip())
        if not m:
            raise GateUsageError(
                f"Cannot read gate rule {text!r}: expected METRIC[.STAT][@REFERENCE]:[+|-]THRESHOLD[,FLOOR], "
                "e.g. ttfa.p50:+10%, ttfa.p95:+20%,20ms, wer:+0.5pt or ttfa.p50@loopback:+10%"
            )
        metric = m["metric"]
        stat = m["stat"]
        if stat is None and "." in metric and metric.rsplit(".", 1)[1] in STATS:
            metric, stat = metric.rsplit(".", 1)
        if "." in metric and not metric.startswith("mark."):
            raise GateUsageError(
                f"Gate rule {text!r}: unknown statistic {metric.split('.', 1)[1]!r}; use one of {', '.join(STATS)}"
            )
        if metric in _RENAMED or metric.removesuffix("_ms") in _RENAMED:
            raise GateUsageError(
                f"Gate rule {text!r}: {metric} was renamed; use {_RENAMED[metric.removesuffix('_ms')]}"
            )
        metric = _ALIASES.get(metric, metric)
        if stat is None:
            stat = _default_stat(metric)
        unit = m["thr_unit"] or ""
        if unit == "ms" and not _is_ms(metric):
            raise GateUsageError(f"Gate rule {text!r}: threshold in ms but {metric} is not measured in ms")
        if m["floor_unit"] == "ms" and not _is_ms(metric):
            raise GateUsageError(f"Gate rule {text!r}: floor in ms but {metric} is not measured in ms")
        direction = {"+": 1, "-": -1}.get(m["sign"] or "")
        return cls(
            text=text.strip(),
            metric=metric,
            stat=stat,
            reference=m["ref"],
            direction=direction,
            threshold=float(m["thr"]),
            threshold_unit=unit,
            floor=float(m["floor"] or 0.0),
            floor_unit=m["floor_unit"] or "",
        )


def parse_rules(texts: list[str] | tuple[str, ...]) -> list[Rule]:
    """Parse every rule (one text may hold several, separated by ``;``); raise naming the bad one."""
    rules = []
    for text in texts:
        for part in filter(None, (p.strip() for p in text.split(";"))):
            rules.append(Rule.parse(part))
    if not rules:
        raise GateUsageError("No gate rule given; pass --rule, e.g. --rule ttfa.p50:+10%")
    return rules


def _is_latency(metric: str) -> bool:
    return metric in LATENCY_METRICS or metric.startswith("mark.")


def _default_stat(metric: str) -> str:
    return "p50" if _is_latency(metric) else "mean"


def _is_ms(metric: str) -> bool:
    return metric.endswith("_ms") or metric.startswith("mark.")


def worse_direction(metric: str, run: RunData | None = None) -> int:
    """+1 when a higher value of ``metric`` is worse (latency, WER), -1 when higher is better (MOS, similarity)."""
    if _is_latency(metric):
        return 1
    if run is not None:
        for key in run.backend_keys:
            info = (run.summary(key).get("metrics") or {}).get(metric) or {}
            if "higher_is_better" in info:
                return -1 if info["higher_is_better"] else 1
    return -1 if metric.lower().startswith(_HIGHER_IS_BETTER_PREFIXES) else 1


def statistic(values: np.ndarray, stat: str) -> float:
    """``stat`` (p50/p90/p95/p99 with linear interpolation, mean, min, max) of ``values``."""
    if stat.startswith("p"):
        return float(np.percentile(values, float(stat[1:])))
    return float(getattr(np, stat)(values))


def mann_whitney_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value; 1.0 when either side has fewer than 2 samples or all values tie."""
    if len(a) < 2 or len(b) < 2:
        return 1.0
    if np.ptp(np.concatenate([a, b])) == 0:
        return 1.0
    try:
        from scipy.stats import mannwhitneyu
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"The gate's Mann-Whitney test needs scipy ({exc.name} is missing): pip install 's2s-bench[report]'"
        ) from None

    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


TESTS = ("mannwhitney", "wilcoxon")
"""Significance tests: ``mannwhitney`` (two independent samples, asv's test) and ``wilcoxon`` (the signed-rank
test of the per-utterance differences: both sides measured the same utterances, interleaved in one run)."""


def wilcoxon_p(base: dict[str, float], cand: dict[str, float]) -> tuple[float, int]:
    """(two-sided Wilcoxon signed-rank p-value of ``cand[u] - base[u]`` over the utterances both have, pairs).

    Why paired: in a side-by-side gate the spread between utterances (how much trailing silence an input has,
    when the model decides to answer) is the same on both sides and cancels in the difference; an unpaired test
    counts it as noise. Zero differences are dropped (Wilcoxon's method); 1.0 below 2 non-zero differences.
    """
    common = [u for u in cand if u in base]
    diffs = np.array([cand[u] - base[u] for u in common], dtype=float)
    if np.count_nonzero(diffs) < 2:
        return 1.0, len(common)
    try:
        from scipy.stats import wilcoxon
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"The gate's Wilcoxon test needs scipy ({exc.name} is missing): pip install 's2s-bench[report]'"
        ) from None
    return float(wilcoxon(diffs, zero_method="wilcox", alternative="two-sided").pvalue), len(common)


# ----------------------------------------------------------------------------------------------- comparing


def machine_class(meta: dict[str, Any]) -> tuple:
    """What makes two machines' latencies comparable: CPU model and generation, core count and GPU (not the
    hostname); see :func:`harness.results.machine_class`."""
    return machine_class_of_machine(meta.get("machine") or {})


def _data_identity(meta: dict[str, Any]) -> tuple:
    d = meta.get("data") or {}
    shard = meta.get(
        "shard"
    )  # one shard of a run (run --shard I/N) holds only part of the data: merge it first
    part = (shard.get("index"), shard.get("count")) if shard else None
    if d.get("ids_sha256"):
        return (d.get("name"), d.get("ids_sha256"), part)
    return (d.get("name"), d.get("split"), d.get("limit"), d.get("n"), part)


def _degraded_note(meta: dict[str, Any], side: str) -> str:
    identity = (meta.get("data") or {}).get("identity") or {}
    return (
        f"; the {side}'s set is DEGRADED ({identity.get('degraded_reason')})"
        if identity.get("degraded")
        else ""
    )


def run_differences(base: RunData, cand: RunData, *, allow_machine_change: bool = False) -> list[str]:
    """Why two runs cannot be compared at all (empty when they can)."""
    why = []
    if base.meta.get("suite") != cand.meta.get("suite"):
        why.append(f"suite {base.meta.get('suite')} vs {cand.meta.get('suite')}")
    if _data_identity(base.meta) != _data_identity(cand.meta):
        bd, cd = base.meta.get("data") or {}, cand.meta.get("data") or {}
        why.append(
            f"data {bd.get('name')}/{bd.get('split')} n={bd.get('n')} vs {cd.get('name')}/{cd.get('split')} n={cd.get('n')}"
            + (
                " (other utterances)"
                if (bd.get("name"), bd.get("n")) == (cd.get("name"), cd.get("n"))
                else ""
            )
            + _degraded_note(base.meta, "baseline")
            + _degraded_note(cand.meta, "candidate")
            + "".join(
                f"; the {side} is shard {r.meta['shard'].get('index')}/{r.meta['shard'].get('count')} "
                "(s2s-bench merge the shards first)"
                for side, r in (("baseline", base), ("candidate", cand))
                if r.meta.get("shard")
            )
        )
    bs, cs = base.meta.get("settings") or {}, cand.meta.get("settings") or {}
    for key in COMPARED_SETTINGS:
        if bs.get(key) != cs.get(key):
            why.append(f"setting {key} {bs.get(key)} vs {cs.get(key)}")
    if not allow_machine_change and machine_class(base.meta) != machine_class(cand.meta):
        why.append("machine class " + " vs ".join(str(machine_class(r.meta)) for r in (base, cand)))
    return why


def option_differences(a: dict[str, Any], b: dict[str, Any], allowed: set[str]) -> list[str]:
    """Backend options that differ between two backend records (``name`` included), except ``allowed`` ones."""
    why = []
    if a.get("name") != b.get("name"):
        why.append(f"backend {a.get('name')} vs {b.get('name')}")
    ao, bo = a.get("options") or {}, b.get("options") or {}
    for key in sorted(set(ao) | set(bo)):
        if key not in allowed and ao.get(key) != bo.get(key):
            why.append(f"option {key} {ao.get(key)} vs {bo.get(key)}")
    return why


def resolve_backend(run: RunData, ref: str) -> str:
    """A backend key of ``run`` from a key or a unique name."""
    keys = run.backend_keys
    if ref in keys:
        return ref
    named = [b["key"] for b in run.meta.get("backends", []) if b.get("name") == ref]
    if len(named) == 1:
        return named[0]
    if named:
        raise GateUsageError(
            f"Reference {ref!r} is ambiguous in {run.source}: use one of the keys {', '.join(named)}"
        )
    raise GateUsageError(f"Reference backend {ref!r} is not in {run.source}; its backends: {', '.join(keys)}")


def _pair_backend(base: RunData, cand_key: str, cand: RunData, exclude: set[str]) -> tuple[str | None, str]:
    """(the baseline backend to compare ``cand_key`` with, why none): the same key, else the one backend of the same
    name that no other candidate backend matches exactly and is not the rule's reference (``exclude``). Its options
    are then checked by :func:`option_differences`."""
    if cand_key in base.backend_keys:
        return cand_key, ""
    name = cand.backend(cand_key).get("name")
    same_name = [
        b["key"] for b in base.meta.get("backends", []) if b.get("name") == name and b["key"] not in exclude
    ]
    if len(same_name) == 1:
        return same_name[0], ""
    if not same_name:
        return None, f"no {name} backend in the baseline to compare with"
    return None, f"key not in the baseline, which has several {name} backends: {', '.join(same_name)}"


@dataclass
class Verdict:
    """One row of the verdict table."""

    backend: str
    rule: str
    verdict: str  # worse | better | ~ | same | x
    baseline: float | None = None
    candidate: float | None = None
    change: str = ""
    p_value: float | None = None  # the deciding test's (``test``)
    n: tuple[int, int] = (0, 0)
    test: str = "mannwhitney"
    p_mann_whitney: float | None = None  # always computed, whatever decides
    n_pairs: int | None = None  # utterances on both sides (paired test)
    unit: str = ""
    note: str = ""
    reasons: list[str] = field(default_factory=list)


def _samples(run: RunData, key: str, rule: Rule) -> tuple[dict[str, float], float | None]:
    if rule.metric == "failed":  # 1 per failed utterance, 0 per measured one: the mean is the failure rate
        vals = {u: float(s == "failed") for u, s in (run.status.get(key) or {}).items()}
    elif rule.metric == "unanswered":  # 1 per turn without an audible answer: the mean is 1 - answer rate
        vals = {u: float(s in ("no_answer", "failed")) for u, s in (run.status.get(key) or {}).items()}
    else:
        vals = (run.samples.get(key) or {}).get(rule.metric) or {}
    if not vals:
        return {}, None
    return vals, statistic(np.array(list(vals.values())), rule.stat)


def _measure(
    run: RunData, key: str, ref_key: str | None, rule: Rule
) -> tuple[dict[str, float], float | None, float | None]:
    """({utterance: sample}, the rule's value, the reference's statistic) for one backend of one run."""
    vals, value = _samples(run, key, rule)
    if ref_key is None or value is None:
        return vals, value, None
    ref_vals, ref_value = _samples(run, ref_key, rule)
    if not ref_value:
        return {}, None, None
    ratios = {u: vals[u] / ref_vals[u] for u in vals if u in ref_vals and ref_vals[u] > 0}
    return ratios, value / ref_value, ref_value


def _to_metric_units(amount: float, unit: str, rule: Rule, run: RunData, ref_stat: float | None) -> float:
    """An absolute threshold or floor in the units of the compared value (a ratio for reference rules)."""
    if unit == "pt":
        info = {}
        for key in run.backend_keys:
            info = (run.summary(key).get("metrics") or {}).get(rule.metric) or info
        amount = amount if info.get("unit") == "%" else amount / 100.0
    if ref_stat:  # reference rules compare ratios: express the amount as a ratio of the reference's statistic
        amount = amount / ref_stat
    return amount


def compare_backend(
    rule: Rule,
    base: RunData,
    cand: RunData,
    base_key: str,
    cand_key: str,
    alpha: float,
    allowed: set[str],
    ref_keys: tuple[str | None, str | None] = (None, None),
    test: str = "mannwhitney",
) -> Verdict:
    """The verdict of one rule for one backend pair; ``ref_keys`` are the reference backends of a ratio rule;
    ``test`` is the significance test (:data:`TESTS`)."""
    unit = "x" if rule.reference else ("ms" if _is_ms(rule.metric) else "")
    v = Verdict(backend=cand_key, rule=rule.text, verdict="x", unit=unit, test=test)
    v.reasons = option_differences(base.backend(base_key), cand.backend(cand_key), allowed)
    if not _is_latency(rule.metric) and rule.metric not in ("failed", "unanswered"):
        for side, run, key in (("baseline", base, base_key), ("candidate", cand, cand_key)):
            if run.latency_only(key):
                v.reasons.append(f"random weights in the {side}: latency only, no quality to compare")
    if rule.reference:
        v.reasons += [
            "reference " + r
            for r in option_differences(base.backend(ref_keys[0]), cand.backend(ref_keys[1]), allowed)
        ]
    b_samples, b_value, _ = _measure(base, base_key, ref_keys[0], rule)
    c_samples, c_value, c_ref = _measure(cand, cand_key, ref_keys[1], rule)
    v.baseline, v.candidate, v.n = b_value, c_value, (len(b_samples), len(c_samples))
    if b_value is None or c_value is None:
        side = "baseline" if b_value is None else "candidate"
        v.reasons.append(f"no {rule.metric} samples in the {side}")
    if v.reasons:
        v.note = "; ".join(v.reasons)
        return v
    direction = rule.direction or worse_direction(rule.metric, cand)
    delta = c_value - b_value
    paired = paired_shift(b_samples, c_samples, rule.stat) if test == "wilcoxon" else None
    if paired is not None:  # the same utterances on both sides: the typical per-utterance change
        delta = paired
    v.change = f"{delta / abs(b_value):+.1%}" if b_value else f"{delta:+.3g}"
    if paired is not None:
        v.change += f" ({_fmt(delta, unit).replace('n/a', '')} per utt.)" if unit == "ms" else " (per utt.)"
    if rule.threshold_unit == "%":
        past = abs(delta) > rule.threshold / 100.0 * abs(b_value)
    else:
        past = abs(delta) > _to_metric_units(rule.threshold, rule.threshold_unit, rule, cand, c_ref)
    floor = _to_metric_units(rule.floor, rule.floor_unit, rule, cand, c_ref) if rule.floor else 0.0
    v.p_mann_whitney = mann_whitney_p(np.array(list(b_samples.values())), np.array(list(c_samples.values())))
    v.p_value = v.p_mann_whitney
    if test == "wilcoxon":
        v.p_value, v.n_pairs = wilcoxon_p(b_samples, c_samples)
    significant = v.p_value < alpha
    if not past:
        v.verdict = "same"
        sign = {1: "+", -1: "-"}.get(rule.direction or 0, "±")
        v.note = f"within {sign}{rule.threshold:g}{rule.threshold_unit}"
    elif not significant:
        v.verdict, v.note = "~", f"not significant (p={v.p_value:.2g} >= {alpha}{_paired(v)})"
    elif abs(delta) <= floor:
        v.verdict, v.note = "~", f"under the floor {rule.floor:g}{rule.floor_unit}"
    else:
        v.verdict = "worse" if delta * direction > 0 else "better"
        v.note = f"p={v.p_value:.2g}{_paired(v)}"
    if rule.metric in ("ttfa_ms", "ttfa_eof_ms"):  # a TTFA covers answered turns only: say how many
        v.note += f"; answered {_answered(base, base_key)} -> {_answered(cand, cand_key)}"
    return v


def paired_shift(base: dict[str, float], cand: dict[str, float], stat: str) -> float | None:
    """For ``p50`` and ``mean`` rules of a paired gate: the median (mean) of the per-utterance differences.

    The difference of two medians is unstable when the values cluster: TTFA from the end of speech is bimodal on
    inputs with and without trailing silence, and a +20 ms shift of every utterance moved p50 by -6% in a
    measured gate. The median of the differences is +20 ms there. Other percentiles (the tail) keep the
    difference of the statistics. None when fewer than 2 utterances are on both sides.
    """
    if stat not in ("p50", "mean"):
        return None
    diffs = np.array([cand[u] - base[u] for u in cand if u in base], dtype=float)
    if diffs.size < 2:
        return None
    return float(np.median(diffs) if stat == "p50" else diffs.mean())


def _paired(v: Verdict) -> str:
    return f", paired over {v.n_pairs} utterances" if v.test == "wilcoxon" else ""


def _answered(run: RunData, key: str) -> str:
    statuses = list((run.status.get(key) or {}).values())
    return f"{sum(s in ('ok', 'truncated') for s in statuses)}/{len(statuses)}"


def compare(
    base: RunData,
    cand: RunData,
    rules: list[Rule],
    *,
    alpha: float = DEFAULT_ALPHA,
    backends: list[str] | None = None,
    allow_options: set[str] | None = None,
    allow_machine_change: bool = False,
    test: str = "mannwhitney",
) -> list[Verdict]:
    """Every rule for every candidate backend (or those in ``backends``): one :class:`Verdict` each.

    ``test``: ``mannwhitney`` (independent samples: a baseline from another run) or ``wilcoxon`` (paired by
    utterance: both runs measured the same utterances side by side, as ``s2s-bench gate --against`` does).
    """
    if not 0 < alpha < 1:
        raise GateUsageError(f"alpha must be between 0 and 1 but got {alpha}")
    if test not in TESTS:
        raise GateUsageError(
            f"Expected the significance test to be one of {', '.join(TESTS)} but got {test!r}"
        )
    allowed = set(allow_options or ())
    keys = cand.backend_keys
    if backends:
        missing = [b for b in backends if b not in keys]
        if missing:
            raise GateUsageError(
                f"Backend {missing[0]!r} is not in {cand.source}; its backends: {', '.join(keys)}"
            )
        keys = list(backends)
    run_why = run_differences(base, cand, allow_machine_change=allow_machine_change)
    mixed = [
        n for side, r in (("baseline", base), ("candidate", cand)) if (n := mixed_machine_note(r.meta, side))
    ]
    out = []
    for rule in rules:
        cand_ref = resolve_backend(cand, rule.reference) if rule.reference else None
        base_ref, why = None, list(run_why)
        if mixed and _is_latency(rule.metric):  # never lifted by allow_machine_change
            why += mixed
        elif (
            mixed
        ):  # quality metrics do not depend on the machine: a merged run of mixed machines may compare
            why = [w for w in why if not w.startswith("machine class")]
        if rule.reference:
            try:
                base_ref = resolve_backend(base, rule.reference)
            except GateUsageError as exc:  # the candidate has it, the baseline does not: not comparable
                why.append(str(exc))
        for key in keys:
            if key == cand_ref:
                continue
            taken = {k for k in cand.backend_keys if k != key and k in base.backend_keys} | {base_ref}
            base_key, unpaired = _pair_backend(base, key, cand, exclude=taken)
            if base_key is None:
                out.append(Verdict(key, rule.text, "x", note=unpaired))
            elif why:
                out.append(Verdict(key, rule.text, "x", note="; ".join(why), reasons=why))
            else:
                out.append(
                    compare_backend(
                        rule, base, cand, base_key, key, alpha, allowed, (base_ref, cand_ref), test=test
                    )
                )
    return out


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "x":
        return f"{value:.3f}x"
    return f"{value:.4g}"


_TEST_NAMES = {"mannwhitney": "Mann-Whitney", "wilcoxon": "Wilcoxon signed-rank, paired by utterance"}


def verdict_table(verdicts: list[Verdict], *, alpha: float = DEFAULT_ALPHA, strict: bool = False) -> str:
    """The verdicts as a Markdown table (rule by rule, backend by backend) plus a one-line summary.

    With a paired test the table has the deciding p and, beside it, the Mann-Whitney p. ``strict``: an ``x``
    (not comparable) fails the gate too (``gate --against``: a side-by-side gate that cannot compare must not
    pass).
    """
    paired = any(v.test == "wilcoxon" for v in verdicts)
    cols = ["backend", "rule", "baseline", "candidate", "change"]
    cols += ["p (paired)", "p (Mann-Whitney)"] if paired else ["p"]
    cols += ["n (base/cand)", "verdict", "note"]
    head = "| " + " | ".join(cols) + " |\n" + "|" + "---|" * len(cols) + "\n"
    lines = []
    for v in verdicts:
        ps = [v.p_value] + ([v.p_mann_whitney] if paired else [])
        p = " | ".join("" if x is None else f"{x:.2g}" for x in ps)
        verdict = (
            f"**{v.verdict}**"
            if v.verdict == "worse" or (strict and v.verdict == "x")
            else f"`{v.verdict}`"
            if v.verdict in "~x"
            else v.verdict
        )
        lines.append(
            f"| {v.backend} | `{v.rule}` | {_fmt(v.baseline, v.unit)} | {_fmt(v.candidate, v.unit)} | {v.change} "
            f"| {p} | {v.n[0]}/{v.n[1]} | {verdict} | {v.note.replace('|', '/')} |"
        )
    counts = {k: sum(v.verdict == k for v in verdicts) for k in ("worse", "better", "~", "same", "x")}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    status = "passed"
    if counts["worse"]:
        status = "FAILED: regression"
    elif strict and counts["x"]:
        status = "FAILED: not comparable (x)"
    tests = sorted({v.test for v in verdicts if v.verdict != "x"}) or ["mannwhitney"]
    how = "; ".join(_TEST_NAMES[t] for t in tests)
    return head + "\n".join(lines) + f"\n\nGate {status} ({summary}; {how}, alpha={alpha}).\n"


VERDICTS_SCHEMA = "s2s-bench.verdicts/1"


def verdicts_json(verdicts: list[Verdict], *, baseline: str, candidate: str, alpha: float) -> dict[str, Any]:
    """The verdicts as a versioned JSON document (for dashboards and CI annotations)."""
    rows = []
    for v in verdicts:
        row = {
            k: getattr(v, k)
            for k in (
                "backend",
                "rule",
                "verdict",
                "baseline",
                "candidate",
                "change",
                "p_value",
                "test",
                "p_mann_whitney",
                "n_pairs",
                "unit",
                "note",
            )
        }
        row["n"] = list(v.n)
        rows.append(row)
    return {
        "schema": VERDICTS_SCHEMA,
        "baseline": baseline,
        "candidate": candidate,
        "alpha": alpha,
        "regressed": regressed(verdicts),
        "verdicts": rows,
    }


def regressed(verdicts: list[Verdict]) -> bool:
    return any(v.verdict == "worse" for v in verdicts)


def incomparable(verdicts: list[Verdict]) -> list[Verdict]:
    """The ``x`` verdicts (what a strict gate fails on besides regressions)."""
    return [v for v in verdicts if v.verdict == "x"]
