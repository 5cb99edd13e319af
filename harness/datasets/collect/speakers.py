"""The ``speakers`` stage: who speaks each VAD segment, within one recording.

Default (``method="resemblyzer"``): a d-vector (resemblyzer's bundled encoder, the one ``harness.metrics`` uses for
speaker similarity) for every segment of at least ``min_embed_s``, then average-linkage agglomerative clustering on
cosine distance, cut at ``max_distance``. A shorter segment joins the nearest cluster when its embedding is within
``max_distance`` of the cluster's centroid; otherwise it takes the speaker of a neighbouring segment no more than
``max_neighbour_gap_s`` away (the same speaker on both sides, or the nearer one); otherwise it stays unlabelled
(``speaker`` null: it is exported as a clip but never paired). Labels are ``<recording>:S1``, ``S2``, ... in order
of first appearance. Speakers are not linked across recordings.

``method="pyannote"`` runs a local pyannote.audio diarization pipeline (``pyannote_path``: a folder saved with its
``config.yaml`` and weights; nothing is downloaded) and gives each segment the speaker it overlaps most.
"""

from __future__ import annotations

import numpy as np

from .manifest import Record
from .media import SAMPLE_RATE, load_recording
from .pipeline import Context, Unit

_pyannote = {}


def embed_segments(
    x: np.ndarray, spans: list[tuple[int, int]], partials_per_s: float
) -> list[np.ndarray | None]:
    """Unit-norm d-vectors of the spans (None where resemblyzer finds under 0.3 s of voiced audio)."""
    from ...metrics.nonintrusive import load_speaker_encoder

    encoder = load_speaker_encoder()  # first: it lets resemblyzer's webrtcvad import without pkg_resources
    from resemblyzer import preprocess_wav

    out: list[np.ndarray | None] = []
    for a, b in spans:
        wav = preprocess_wav(x[a:b], source_sr=None)
        if wav.size < int(0.3 * SAMPLE_RATE):
            out.append(None)
            continue
        e = encoder.embed_utterance(wav, rate=partials_per_s)
        out.append(e / (np.linalg.norm(e) + 1e-12))
    return out


def cluster(embeddings: np.ndarray, max_distance: float) -> np.ndarray:
    """Cluster ids (0-based) by average-linkage agglomerative clustering on cosine distance."""
    if len(embeddings) == 1:
        return np.zeros(1, int)
    from scipy.cluster.hierarchy import fcluster, linkage

    z = linkage(embeddings, method="average", metric="cosine")
    return fcluster(z, t=max_distance, criterion="distance") - 1


def label_segments(
    segs: list[Record], embs: list[np.ndarray | None], params: dict
) -> list[tuple[int | None, float | None]]:
    """(cluster, cosine similarity to its centroid) for each segment (see the module docstring)."""
    n = len(segs)
    long_ix = [i for i in range(n) if embs[i] is not None and segs[i]["duration_s"] >= params["min_embed_s"]]
    labels: list[int | None] = [None] * n
    sims: list[float | None] = [None] * n
    if long_ix:
        ids = cluster(np.stack([embs[i] for i in long_ix]), params["max_distance"])
        centroids = {}
        for c in set(ids.tolist()):
            m = np.mean([embs[long_ix[k]] for k in range(len(long_ix)) if ids[k] == c], axis=0)
            centroids[c] = m / (np.linalg.norm(m) + 1e-12)
        for k, i in enumerate(long_ix):
            labels[i] = int(ids[k])
            sims[i] = float(np.dot(embs[i], centroids[int(ids[k])]))
        for i in range(n):
            if labels[i] is None and embs[i] is not None:
                c, s = max(((c, float(np.dot(embs[i], m))) for c, m in centroids.items()), key=lambda t: t[1])
                if 1 - s <= params["max_distance"]:
                    labels[i], sims[i] = c, s
    gap = params["max_neighbour_gap_s"]
    for i in range(n):
        if labels[i] is not None:
            continue
        prev = next((j for j in range(i - 1, -1, -1) if labels[j] is not None), None)
        nxt = next((j for j in range(i + 1, n) if labels[j] is not None), None)
        near = []
        if prev is not None and segs[i]["start_s"] - segs[prev]["end_s"] <= gap:
            near.append((segs[i]["start_s"] - segs[prev]["end_s"], labels[prev]))
        if nxt is not None and segs[nxt]["start_s"] - segs[i]["end_s"] <= gap:
            near.append((segs[nxt]["start_s"] - segs[i]["end_s"], labels[nxt]))
        if near:
            labels[i] = min(near)[1]
    return list(zip(labels, sims, strict=True))


def _pyannote_turns(x: np.ndarray, path: str) -> list[tuple[float, float, str]]:
    if path not in _pyannote:
        try:
            import torch
            from pyannote.audio import Pipeline
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                "speakers method 'pyannote' needs pyannote.audio: pip install pyannote.audio"
            ) from None
        from pathlib import Path

        if not (Path(path) / "config.yaml").exists():
            raise FileNotFoundError(
                f"pyannote pipeline folder {path!r} has no config.yaml (a local pipeline is needed)"
            )
        _pyannote[path] = (Pipeline.from_pretrained(path), torch)
    pipeline, torch = _pyannote[path]
    diarization = pipeline({"waveform": torch.from_numpy(x)[None], "sample_rate": SAMPLE_RATE})
    annotation = getattr(diarization, "speaker_diarization", diarization)
    return [
        (float(turn.start), float(turn.end), str(spk))
        for turn, _, spk in annotation.itertracks(yield_label=True)
    ]


def process_speakers(unit: Unit, params: dict, ctx: Context) -> list[Record]:
    segs = sorted(unit["vad"], key=lambda r: r["start_s"])
    if not segs:
        return []
    rec = unit["loudness"][0]
    x = load_recording(ctx, rec)
    if params["method"] == "pyannote":
        turns = _pyannote_turns(x, params["pyannote_path"])
        raw = []
        for s in segs:
            overlap: dict[str, float] = {}
            for a, b, spk in turns:
                o = min(b, s["end_s"]) - max(a, s["start_s"])
                if o > 0:
                    overlap[spk] = overlap.get(spk, 0.0) + o
            raw.append((max(overlap, key=overlap.get) if overlap else None, None))
    else:
        spans = [(int(s["start_s"] * SAMPLE_RATE), int(s["end_s"] * SAMPLE_RATE)) for s in segs]
        raw = label_segments(segs, embed_segments(x, spans, params["partials_per_s"]), params)
    names: dict[object, str] = {}
    out = []
    for s, (label, sim) in zip(segs, raw, strict=True):
        if label is not None and label not in names:
            names[label] = f"{rec['id']}:S{len(names) + 1}"
        out.append(
            {**s, "speaker": names.get(label), "speaker_similarity": None if sim is None else round(sim, 4)}
        )
    return out
