"""Non-intrusive audio quality: DNSMOS (P.835 SIG/BAK/OVRL and P.808) and speaker similarity.

Models come from inside installed wheels and are loaded once per process:

- DNSMOS: ``sig_bak_ovr.onnx`` and ``model_v8.onnx`` in the ``speechmos`` package folder
  (``speechmos/dnsmos_models/``), run with onnxruntime on one thread. Nothing is downloaded.
- Speaker similarity: ``resemblyzer``'s ``pretrained.pt`` (a 3-layer LSTM d-vector encoder) shipped in its wheel.
"""

from __future__ import annotations

import os

import numpy as np

from ..audio import resample

METRICS_EXTRA = "pip install 's2s-bench[metrics]'"
DNSMOS_SR = 16000
DNSMOS_WINDOW_S = 9.01
"""DNSMOS scores 9.01 s windows (hop 1 s); shorter clips are tiled (repeated) up to one window."""

_dnsmos_sessions: tuple | None = None
_encoder = None


def _onnx_session(path: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def dnsmos_model_paths() -> tuple[str, str]:
    """(P.835 model, P.808 model) inside the installed ``speechmos`` wheel."""
    try:
        import speechmos
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"DNSMOS needs the 'speechmos' package: {METRICS_EXTRA}") from None
    root = os.path.join(os.path.dirname(os.path.abspath(speechmos.__file__)), "dnsmos_models")
    return os.path.join(root, "sig_bak_ovr.onnx"), os.path.join(root, "model_v8.onnx")


def load_dnsmos() -> tuple:
    """Load (once per process) the two ONNX sessions; raises ModuleNotFoundError naming the extra."""
    global _dnsmos_sessions
    if _dnsmos_sessions is None:
        try:
            import librosa  # noqa: F401 - the P.808 features need it
            import onnxruntime  # noqa: F401
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(f"DNSMOS needs '{exc.name}': {METRICS_EXTRA} onnxruntime") from None
        primary, p808 = dnsmos_model_paths()
        _dnsmos_sessions = (_onnx_session(primary), _onnx_session(p808))
    return _dnsmos_sessions


def tile_to_window(x: np.ndarray, n: int) -> np.ndarray:
    """Repeat ``x`` end to end until it has at least ``n`` samples, cut to exactly ``n`` if it was shorter."""
    if x.size >= n:
        return x
    reps = -(-n // x.size)
    return np.tile(x, reps)[:n]


def dnsmos(x: np.ndarray, fs: int) -> dict[str, float]:
    """DNSMOS of one clip: ``{"sig", "bak", "ovrl", "p808"}`` MOS values (1-5, higher is better).

    The clip is resampled to 16 kHz and clipped to [-1, 1]. A clip shorter than the model's 9.01 s window is
    tiled (repeated) to exactly one window, so a 2 s answer is scored on its own content rather than on
    zero padding (which the model hears as silence and scores low). Longer clips are scored on 9.01 s windows
    with a 1 s hop and the window scores averaged, as in the reference implementation.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"Expected a non-empty 1-D signal but got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("Expected finite samples but the signal has NaN/inf")
    primary, p808 = load_dnsmos()
    from speechmos.dnsmos import DNSMOS as _DNSMOS

    x = np.clip(resample(x, fs, DNSMOS_SR), -1.0, 1.0)
    win = int(DNSMOS_WINDOW_S * DNSMOS_SR)
    x = tile_to_window(x, win)
    n_hops = int(np.floor(x.size / DNSMOS_SR) - DNSMOS_WINDOW_S) + 1
    sig, bak, ovr, p8 = [], [], [], []
    for k in range(max(1, n_hops)):
        seg = x[k * DNSMOS_SR : k * DNSMOS_SR + win]
        if seg.size < win:
            break
        raw = primary.run(None, {"input_1": seg[np.newaxis, :].astype(np.float32)})[0][0]
        # speechmos's own feature recipe and MOS polynomials (methods that do not use ``self``).
        feats = np.asarray(_DNSMOS.audio_melspec(None, audio=seg[:-160]), dtype=np.float32)[np.newaxis]
        p8.append(float(p808.run(None, {"input_1": feats})[0][0][0]))
        s, b, o = _DNSMOS.get_polyfit_val(None, raw[0], raw[1], raw[2], False)
        sig.append(float(s))
        bak.append(float(b))
        ovr.append(float(o))
    return {
        "sig": float(np.mean(sig)),
        "bak": float(np.mean(bak)),
        "ovrl": float(np.mean(ovr)),
        "p808": float(np.mean(p8)),
    }


def dnsmos_p808(x: np.ndarray, fs: int) -> dict[str, float]:
    """DNSMOS P.808 alone (``{"p808"}``, 1-5): the same windows and features as :func:`dnsmos`, without the P.835
    model, which costs about 20x more CPU (the data collection pipeline's cheap quality filter)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"Expected a non-empty, finite 1-D signal but got shape {x.shape}")
    _, p808 = load_dnsmos()
    from speechmos.dnsmos import DNSMOS as _DNSMOS

    x = tile_to_window(np.clip(resample(x, fs, DNSMOS_SR), -1.0, 1.0), int(DNSMOS_WINDOW_S * DNSMOS_SR))
    win = int(DNSMOS_WINDOW_S * DNSMOS_SR)
    n_hops = max(1, int(np.floor(x.size / DNSMOS_SR) - DNSMOS_WINDOW_S) + 1)
    scores = []
    for k in range(n_hops):
        seg = x[k * DNSMOS_SR : k * DNSMOS_SR + win]
        if seg.size < win:
            break
        feats = np.asarray(_DNSMOS.audio_melspec(None, audio=seg[:-160]), dtype=np.float32)[np.newaxis]
        scores.append(float(p808.run(None, {"input_1": feats})[0][0][0]))
    return {"p808": float(np.mean(scores))}


def _pkg_resources_shim() -> None:
    """Let ``webrtcvad`` (imported by resemblyzer) import under setuptools >= 81, which dropped ``pkg_resources``.

    webrtcvad 2.0.10 only calls ``pkg_resources.get_distribution(name).version`` at import; when the real
    ``pkg_resources`` is missing, a stand-in answering that one call from ``importlib.metadata`` is installed.
    """
    import sys

    try:
        import pkg_resources  # noqa: F401
    except ModuleNotFoundError:
        import types
        from importlib import metadata

        shim = types.ModuleType("pkg_resources")
        shim.get_distribution = lambda name: types.SimpleNamespace(version=metadata.version(name))  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim


def load_speaker_encoder():
    """resemblyzer's bundled voice encoder on CPU (once per process)."""
    global _encoder
    if _encoder is None:
        _pkg_resources_shim()
        try:
            from resemblyzer import VoiceEncoder
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(f"Speaker similarity needs '{exc.name}': {METRICS_EXTRA}") from None
        _encoder = VoiceEncoder(device="cpu", verbose=False)
    return _encoder


def speaker_embedding(x: np.ndarray, fs: int) -> np.ndarray:
    """256-d unit-norm d-vector of a clip (resampled to 16 kHz, volume-normalised, long silences trimmed)."""
    encoder = load_speaker_encoder()
    from resemblyzer import preprocess_wav

    wav = preprocess_wav(resample(np.asarray(x, dtype=np.float32), fs, 16000), source_sr=None)
    if wav.size < 1600:
        raise ValueError(
            f"Expected at least 0.1 s of voiced audio for a speaker embedding but got {wav.size} samples"
        )
    return encoder.embed_utterance(wav)


def speaker_similarity(x: np.ndarray, fs: int, ref: np.ndarray, ref_fs: int) -> float:
    """Cosine similarity (-1..1, higher is more alike) of the d-vectors of a response and a reference voice."""
    a, b = speaker_embedding(x, fs), speaker_embedding(ref, ref_fs)
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
