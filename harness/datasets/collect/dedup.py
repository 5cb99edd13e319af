"""The ``dedup`` stage: exact and near duplicate clips removed, the first occurrence kept.

- **Exact**: the SHA-256 of the clip's 16-bit PCM; the same audio twice (a file copied with new metadata, the same
  podcast as wav and flac) matches exactly.
- **Near**: the same speech through different encoders, bitrates or levels (the same episode as mp4 and mp3, a
  re-upload). Each clip gets landmark fingerprints in the manner of Wang's Shazam and Ellis's audfprint: peaks of the
  log spectrogram, paired with the next peaks ahead into hashes of (frequency, frequency difference, time difference)
  that survive lossy coding and noise. Candidates come from a MinHash LSH index over the hash sets (``datasketch``),
  and a candidate counts as a duplicate when at least ``near_match`` of the shorter clip's hashes line up at one
  time offset in the other and the durations differ by at most ``max_duration_ratio``.

chromaprint (the AcoustID fingerprinter, via pyacoustid) would fit too, but needs the libchromaprint system
library, which pip cannot install; datasketch and the landmarks need nothing outside PyPI.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .manifest import Record, hours
from .media import SAMPLE_RATE, load_recording
from .pipeline import Context, Unit

N_FFT, HOP = 512, 256  # 32 ms windows, 16 ms hop
FAN_OUT = 4
MAX_DT = 40  # frames (0.64 s)
PEAKS_PER_S = 25


def landmarks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hashes uint32, anchor frame int32) of the spectral-peak landmarks of 16 kHz mono ``x``."""
    from scipy.ndimage import maximum_filter

    if x.size < N_FFT * 2:
        return np.zeros(0, np.uint32), np.zeros(0, np.int32)
    n = 1 + (x.size - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(N_FFT)[None, :], axis=1))[:, 8:200]  # 250 Hz .. 6.25 kHz
    logs = np.log(spec + 1e-6)
    logs -= logs.mean(axis=0, keepdims=True)
    peaks = (logs == maximum_filter(logs, size=(9, 15))) & (logs > logs.mean() + logs.std())
    t, f = np.nonzero(peaks)
    if t.size == 0:
        return np.zeros(0, np.uint32), np.zeros(0, np.int32)
    strength = logs[t, f]
    keep = []
    block = int(SAMPLE_RATE / HOP)  # ~1 s of frames
    for start in range(0, n, block):
        sel = np.flatnonzero((t >= start) & (t < start + block))
        keep.extend(sel[np.argsort(-strength[sel])[:PEAKS_PER_S]].tolist())
    order = np.array(sorted(keep, key=lambda i: (t[i], f[i])), dtype=int)
    t, f = t[order], f[order]
    hashes, anchors = [], []
    for i in range(t.size):
        j_end = min(t.size, i + 1 + 3 * FAN_OUT)
        taken = 0
        for j in range(i + 1, j_end):
            dt = int(t[j] - t[i])
            if dt < 1:
                continue
            if dt > MAX_DT or taken >= FAN_OUT:
                break
            df = int(f[j] - f[i]) + 128
            if 0 <= df < 256:
                hashes.append((int(f[i]) << 14) | (df << 6) | dt)
                anchors.append(int(t[i]))
                taken += 1
    return np.asarray(hashes, np.uint32), np.asarray(anchors, np.int32)


def pcm_sha256(x: np.ndarray) -> str:
    return hashlib.sha256(np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()).hexdigest()


def aligned_match(h1: np.ndarray, t1: np.ndarray, h2: np.ndarray, t2: np.ndarray) -> float:
    """Fraction of the smaller landmark set that matches the other at the single best time offset."""
    if h1.size == 0 or h2.size == 0:
        return 0.0
    if h1.size > h2.size:
        h1, t1, h2, t2 = h2, t2, h1, t1
    order = np.argsort(h2, kind="stable")
    h2s, t2s = h2[order], t2[order]
    lo, hi = np.searchsorted(h2s, h1, "left"), np.searchsorted(h2s, h1, "right")
    offsets = [t2s[k] - t1[i] for i in range(h1.size) for k in range(lo[i], min(hi[i], lo[i] + 8))]
    if not offsets:
        return 0.0
    counts = np.bincount(np.asarray(offsets) - min(offsets))
    best = int(np.max(np.convolve(counts, np.ones(3, int), "same")))  # allow +-1 frame of jitter
    return min(1.0, best / h1.size)


def process_fingerprints(unit: Unit, params: dict, ctx: Context) -> list[Record]:
    clips = unit["filter"]
    if not clips:
        return []
    x = load_recording(ctx, unit["loudness"][0])
    arrays = {}
    out = []
    for c in clips:
        y = x[int(c["start_s"] * SAMPLE_RATE) : int(c["end_s"] * SAMPLE_RATE)]
        h, t = landmarks(y)
        arrays[f"{c['id']}/h"], arrays[f"{c['id']}/t"] = h, t
        out.append({**c, "pcm_sha256": pcm_sha256(y), "landmarks": int(h.size)})
    art = ctx.stage_dir / "fingerprints" / f"{clips[0]['recording_id']}.npz"
    art.parent.mkdir(parents=True, exist_ok=True)
    tmp = art.with_name(art.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(art)
    return out


def reduce_duplicates(records: list[Record], params: dict, ctx: Context) -> list[Record]:
    """Drop exact then near duplicates (keeping the first in manifest order); write ``duplicates.jsonl``."""
    from datasketch import MinHash, MinHashLSH

    from .manifest import write_jsonl

    fps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for rid in dict.fromkeys(r["recording_id"] for r in records):
        with np.load(ctx.stage_dir / "fingerprints" / f"{rid}.npz") as z:
            for r in records:
                if r["recording_id"] == rid:
                    fps[r["id"]] = (z[f"{r['id']}/h"], z[f"{r['id']}/t"])
    seen_sha: dict[str, str] = {}
    lsh = MinHashLSH(threshold=params["lsh_threshold"], num_perm=params["num_perm"])
    kept: list[Record] = []
    dups: list[dict] = []
    by_id: dict[str, Record] = {}
    for r in records:
        if r["pcm_sha256"] in seen_sha:
            dups.append(
                {
                    "id": r["id"],
                    "duplicate_of": seen_sha[r["pcm_sha256"]],
                    "kind": "exact",
                    "duration_s": r["duration_s"],
                }
            )
            continue
        h, t = fps[r["id"]]
        mh = None
        if h.size >= params["min_landmarks"]:
            mh = MinHash(num_perm=params["num_perm"], seed=1)
            mh.update_batch([int(v).to_bytes(4, "little") for v in np.unique(h)])
            match = None
            for cand in lsh.query(mh):
                other = by_id[cand]
                ratio = max(other["duration_s"], r["duration_s"]) / max(
                    1e-6, min(other["duration_s"], r["duration_s"])
                )
                if (
                    ratio <= params["max_duration_ratio"]
                    and aligned_match(h, t, *fps[cand]) >= params["near_match"]
                ):
                    match = cand
                    break
            if match is not None:
                dups.append(
                    {"id": r["id"], "duplicate_of": match, "kind": "near", "duration_s": r["duration_s"]}
                )
                continue
            lsh.insert(r["id"], mh)
        seen_sha[r["pcm_sha256"]] = r["id"]
        by_id[r["id"]] = r
        kept.append(r)
    write_jsonl(ctx.stage_dir / "duplicates.jsonl", dups)
    return kept


def summarize_duplicates(records_in: list[Record], records_out: list[Record], params: dict) -> dict:
    kept = {r["id"] for r in records_out}
    gone = [r for r in records_in if r["id"] not in kept]
    return {"duplicates": {"clips": len(gone), "hours": round(hours(gone), 6)}}
