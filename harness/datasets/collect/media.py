"""The ``decode`` and ``loudness`` stages: any media file to 16 kHz mono WAV, then EBU R128 loudness.

Decoding streams through PyAV (FFmpeg's demuxers and decoders: mp4, mkv, webm, mp3, m4a, opus, wav, ...): each
decoded frame is mixed down to mono and resampled by soxr (HQ) on the fly, so a two-hour podcast never sits in memory
at its source rate. The result is 16-bit PCM WAV under ``work/audio/``.

Loudness is measured with pyloudnorm (ITU-R BS.1770-4 integrated loudness, as EBU R128 asks) and the recording gets
the gain that brings it to ``target_lufs``, limited so that its peak stays at or below ``max_peak_dbfs``. The gain
is recorded (``gain_db``) and applied whenever later stages read the audio, as lhotse applies a Recording's
transforms lazily; the exported clips are written with it applied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .manifest import Record
from .pipeline import Context, Unit

SAMPLE_RATE = 16000


class MediaError(Exception):
    """A source cannot be decoded; the message names the file and the problem."""


def decode_to_wav(src: str | Path, dst: Path) -> dict:
    """Decode ``src``'s first audio stream to 16 kHz mono 16-bit WAV at ``dst``; returns what was found."""
    import soundfile as sf
    import soxr

    try:
        import av
    except ModuleNotFoundError:
        raise MediaError("decoding needs PyAV: pip install 's2s-bench[collect]'") from None
    src = Path(src)
    if not src.is_file():
        raise MediaError(f"{src}: file not found")
    if src.stat().st_size == 0:
        raise MediaError(f"{src}: empty file (0 bytes)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".partial.wav")
    n_out = 0
    bad = 0
    try:
        with av.open(str(src)) as container:
            if not container.streams.audio:
                raise MediaError(f"{src}: no audio stream (streams: {[s.type for s in container.streams]})")
            stream = container.streams.audio[0]
            rate = int(stream.codec_context.sample_rate or stream.rate or 0)
            channels = int(stream.codec_context.channels or 0)
            codec = stream.codec_context.name
            resampler = None
            with sf.SoundFile(str(tmp), "w", SAMPLE_RATE, 1, subtype="PCM_16", format="WAV") as out:
                for frame in container.decode(stream):
                    arr = frame.to_ndarray()
                    arr = arr if frame.format.is_planar else arr.reshape(-1, len(frame.layout.channels)).T
                    if arr.dtype.kind == "i":
                        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max + 1)
                    mono = np.asarray(arr, dtype=np.float32).mean(axis=0)
                    if not np.all(np.isfinite(mono)):
                        bad += int(np.sum(~np.isfinite(mono)))
                        mono = np.nan_to_num(mono, nan=0.0, posinf=0.0, neginf=0.0)
                    if resampler is None:
                        rate = int(frame.sample_rate or rate)
                        resampler = (soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
                                     if rate != SAMPLE_RATE else False)  # fmt: skip
                    elif frame.sample_rate and frame.sample_rate != rate:
                        raise MediaError(
                            f"{src}: sample rate changes mid-stream ({rate} -> {frame.sample_rate} Hz)"
                        )
                    y = resampler.resample_chunk(mono) if resampler else mono
                    out.write(np.clip(y, -1.0, 1.0))
                    n_out += y.size
                if resampler:
                    y = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
                    out.write(np.clip(y, -1.0, 1.0))
                    n_out += y.size
    except MediaError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:  # av.error.InvalidDataError and friends
        tmp.unlink(missing_ok=True)
        raise MediaError(f"{src}: cannot decode ({type(exc).__name__}: {exc})") from None
    if n_out == 0:
        tmp.unlink(missing_ok=True)
        raise MediaError(f"{src}: the audio stream decoded to no samples")
    if bad > n_out // 100:
        tmp.unlink(missing_ok=True)
        raise MediaError(f"{src}: {bad} NaN/inf samples")
    tmp.replace(dst)
    return {"source_sample_rate": rate, "source_channels": channels, "codec": codec,
            "duration_s": round(n_out / SAMPLE_RATE, 4)}  # fmt: skip


def process_decode(unit: Unit, params: dict, ctx: Context) -> list[Record]:
    out = []
    for rec in unit["ingest"]:
        rel = f"work/audio/{rec['id']}.wav"
        found = decode_to_wav(rec["path"], ctx.path(rel))
        out.append({**rec, **found, "audio": rel})
    return out


def load_recording(ctx: Context, rec: Record) -> np.ndarray:
    """A recording's decoded audio, float32 at 16 kHz, with its loudness gain applied (if measured)."""
    import soundfile as sf

    x, sr = sf.read(str(ctx.path(rec["audio"])), dtype="float32")
    if sr != SAMPLE_RATE:
        raise MediaError(f"{rec['audio']}: expected {SAMPLE_RATE} Hz, found {sr} Hz (rerun the decode stage)")
    gain = float(rec.get("gain_db") or 0.0)
    return x * np.float32(10 ** (gain / 20)) if gain else x


def loudness_gain(x: np.ndarray, target_lufs: float, max_peak_dbfs: float) -> dict:
    """Integrated loudness (LUFS), peak (dBFS) and the gain (dB) to ``target_lufs`` with the peak limit."""
    try:
        import pyloudnorm
    except ModuleNotFoundError:
        raise MediaError(
            "loudness normalisation needs pyloudnorm: pip install 's2s-bench[collect]'"
        ) from None
    if x.size < int(0.4 * SAMPLE_RATE):
        raise MediaError(f"too short for a loudness measurement: {x.size / SAMPLE_RATE:.2f} s (needs 0.4 s)")
    lufs = float(pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(x.astype(np.float64)))
    peak = float(np.max(np.abs(x)))
    if not np.isfinite(lufs) or peak <= 0:
        raise MediaError("digital silence: no loudness to normalise")
    peak_db = 20 * np.log10(peak)
    gain = target_lufs - lufs
    limited = gain > max_peak_dbfs - peak_db
    gain = min(gain, max_peak_dbfs - peak_db)
    return {"loudness_lufs": round(lufs, 2), "peak_dbfs": round(peak_db, 2), "gain_db": round(gain, 3),
            "gain_peak_limited": bool(limited)}  # fmt: skip


def process_loudness(unit: Unit, params: dict, ctx: Context) -> list[Record]:
    out = []
    for rec in unit["decode"]:
        x = load_recording(ctx, {**rec, "gain_db": 0.0})
        try:
            found = loudness_gain(x, params["target_lufs"], params["max_peak_dbfs"])
        except MediaError as exc:
            raise MediaError(f"{rec['path']}: {exc}") from None
        out.append({**rec, **found})
    return out
