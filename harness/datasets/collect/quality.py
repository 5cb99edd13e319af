"""The ``quality`` and ``filter`` stages: measure every clip, then keep those that pass recorded thresholds.

Measured per clip (``quality``):

- ``snr_db``: the clip's power against the recording's noise, i.e. the mean power of the frames of the recording
  that lie outside every clip (with a 100 ms margin) within 20 s of it; where there are not 0.5 s of such frames, the
  quietest 10 % of the clip's own 10 ms frames stand in (``snr_method`` says which). Signal power is the clip's mean
  power minus the noise power.
- ``clipped_fraction``: the fraction of samples at full scale (``|x| >= 0.999``, as ``s2s-bench data check``) in the
  decoded audio *before* the loudness gain.
- DNSMOS (``harness.metrics``: P.835 ``dnsmos_sig``/``dnsmos_bak``/``dnsmos_ovrl`` and ``dnsmos_p808``) on
  consecutive 9.01 s windows (a shorter clip, or a last window under 3 s, is scored as DNSMOS scores short clips:
  tiled), averaged. ``dnsmos="p808"`` scores only the P.808 model (about 20x cheaper), ``"off"`` none.

``filter`` keeps a clip when it passes every threshold; the reasons for each rejection, and the hours each filter
removed, go into ``stage.json`` and the data card.
"""

from __future__ import annotations

import numpy as np

from ...audio import CLIP_LEVEL
from .manifest import Record
from .media import SAMPLE_RATE, load_recording
from .pipeline import Context, Unit

FRAME = 160  # 10 ms
NOISE_CONTEXT_S = 20.0
MIN_NOISE_S = 0.5


def _frame_power(x: np.ndarray) -> np.ndarray:
    n = x.size // FRAME
    f = np.asarray(x[: n * FRAME], dtype=np.float64).reshape(n, FRAME)
    return np.mean(f * f, axis=1)


def snr_estimate(x: np.ndarray, clip: tuple[int, int], speech: list[tuple[int, int]]) -> tuple[float, str]:
    """(SNR in dB, method) of ``x[clip[0]:clip[1]]`` given every speech span of the recording (samples)."""
    power = _frame_power(x)
    mask = np.ones(power.size, bool)
    margin = int(0.1 * SAMPLE_RATE) // FRAME
    for a, b in speech:
        mask[max(0, a // FRAME - margin) : b // FRAME + margin + 1] = False
    lo = max(0, (clip[0] - int(NOISE_CONTEXT_S * SAMPLE_RATE)) // FRAME)
    hi = min(power.size, (clip[1] + int(NOISE_CONTEXT_S * SAMPLE_RATE)) // FRAME)
    near = power[lo:hi][mask[lo:hi]]
    seg = power[clip[0] // FRAME : max(clip[0] // FRAME + 1, clip[1] // FRAME)]
    if near.size * FRAME >= MIN_NOISE_S * SAMPLE_RATE:
        noise, method = float(np.mean(near)), "pauses"
    else:
        noise, method = float(np.mean(np.sort(seg)[: max(1, seg.size // 10)])), "quietest-10%"
    signal = max(float(np.mean(seg)) - noise, 1e-12)
    return round(10 * np.log10(signal / max(noise, 1e-12)), 2), method


def dnsmos_windows(x: np.ndarray, which: str) -> dict[str, float]:
    """DNSMOS of a clip on consecutive 9.01 s windows (harness.metrics' models and recipe), averaged."""
    from ...metrics.nonintrusive import DNSMOS_WINDOW_S, dnsmos, dnsmos_p808

    win = int(DNSMOS_WINDOW_S * SAMPLE_RATE)
    starts = list(range(0, max(1, x.size - win + 1), win))
    if x.size > win and x.size - (starts[-1] + win) >= 3 * SAMPLE_RATE:
        starts.append(x.size - win)
    scores = [dnsmos(x[s : s + win], SAMPLE_RATE) if which == "p835" else dnsmos_p808(x[s : s + win], SAMPLE_RATE)
              for s in starts]  # fmt: skip
    return {f"dnsmos_{k}" if k != "p808" else "dnsmos_p808": round(float(np.mean([s[k] for s in scores])), 3)
            for k in scores[0]}  # fmt: skip


def process_quality(unit: Unit, params: dict, ctx: Context) -> list[Record]:
    clips = unit["turns"]
    if not clips:
        return []
    rec = unit["loudness"][0]
    x = load_recording(ctx, rec)
    gain = 10 ** (float(rec.get("gain_db") or 0.0) / 20)
    spans = [(int(c["start_s"] * SAMPLE_RATE), int(c["end_s"] * SAMPLE_RATE)) for c in clips]
    out = []
    for clip, (a, b) in zip(clips, spans, strict=True):
        y = x[a:b]
        snr, method = snr_estimate(x, (a, b), spans)
        found = {
            "snr_db": snr, "snr_method": method,
            "clipped_fraction": round(float(np.mean(np.abs(y / gain) >= CLIP_LEVEL)) if y.size else 0.0, 6),
        }  # fmt: skip
        if params["dnsmos"] != "off" and y.size >= int(0.5 * SAMPLE_RATE):
            found.update(dnsmos_windows(y, params["dnsmos"]))
        out.append({**clip, **found})
    return out


def reject_reasons(rec: Record, params: dict) -> list[str]:
    """The filters ``rec`` fails (names as in the data card); empty when it is kept."""
    out = []
    d = float(rec["duration_s"])
    if d < params["min_duration_s"]:
        out.append("too_short")
    if d > params["max_duration_s"]:
        out.append("too_long")
    if rec.get("snr_db") is not None and rec["snr_db"] < params["min_snr_db"]:
        out.append("low_snr")
    if rec.get("clipped_fraction", 0.0) > params["max_clipped_fraction"]:
        out.append("clipping")
    key = "dnsmos_p808" if params.get("dnsmos_model") == "p808" else "dnsmos_ovrl"
    if params["min_dnsmos"] and rec.get(key) is not None and rec[key] < params["min_dnsmos"]:
        out.append("low_dnsmos")
    if params["min_dnsmos"] and params.get("dnsmos_model") != "off" and rec.get(key) is None and d >= 0.5:
        out.append("no_dnsmos")
    return out


def process_filter(unit: Unit, params: dict, ctx: Context) -> list[Record]:
    return [r for r in unit["quality"] if not reject_reasons(r, params)]


def summarize_filter(records_in: list[Record], records_out: list[Record], params: dict) -> dict:
    """Hours each filter rejects: ``alone`` (every clip failing it) and ``first`` (clips it is the first to fail)."""
    from .manifest import hours

    filters: dict[str, dict] = {}
    rejected = []
    for rec in records_in:
        reasons = reject_reasons(rec, params)
        for k, name in enumerate(reasons):
            f = filters.setdefault(name, {"clips": 0, "hours": 0.0, "first_clips": 0, "first_hours": 0.0})
            f["clips"] += 1
            f["hours"] += rec["duration_s"] / 3600
            if k == 0:
                f["first_clips"] += 1
                f["first_hours"] += rec["duration_s"] / 3600
        if reasons:
            rejected.append({"id": rec["id"], "reasons": reasons})
    for f in filters.values():
        f["hours"], f["first_hours"] = round(f["hours"], 6), round(f["first_hours"], 6)
    thresholds = {k: v for k, v in params.items()}
    return {"filters": filters, "thresholds": thresholds, "rejected": rejected,
            "hours_kept": round(hours(records_out), 6)}  # fmt: skip
