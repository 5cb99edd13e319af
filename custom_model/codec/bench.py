"""Codec benchmark: our codec next to Opus (and Codec2) on the same utterances, in the same run.

For every system and utterance: encode + decode the 16 kHz signal, align, then PESQ-WB, STOI, SI-SDR and log-mel
distance against the input; the bitrate actually spent (bits of all packets / seconds of audio); the algorithmic
latency (frame + lookahead); and the streaming encode+decode time per 20 ms frame on one thread (RTF = time / 20 ms),
both wall-clock (what a shared machine gives you) and the thread's CPU time (what the codec costs).

Opus runs through libopus with ctypes, using the very ``libopus`` that PyAV's wheel ships (``pip install av``),
because FFmpeg's ``libopus`` wrapper can only cap the bandwidth (``cutoff``), not force it: "auto" lets libopus pick
the audio bandwidth for the bitrate (narrow/medium band at 4-6 kbps), "wb" forces wide band (OPUS_SET_BANDWIDTH).
Codec2 (``pip install pycodec2``) is narrow band: 16 kHz is resampled to 8 kHz and back; its RTF excludes that.

    from custom_model.codec.bench import run_codec_benchmark
    rows = run_codec_benchmark("custom_model/checkpoints/codec-small", "telugu-mini", split="test")
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .metrics import all_metrics

SR = 16000
FRAME = 320  # 20 ms at 16 kHz


@dataclass
class Coded:
    """One system's output for one utterance: the decoded signal (aligned, same length) and the bits spent."""

    audio: np.ndarray
    bits: int
    frame_times_s: list[float] = field(default_factory=list)  # encode+decode wall time of each 20 ms frame
    cpu_s: float = 0.0  # CPU time of this thread spent in encode+decode (all frames)


@dataclass
class System:
    name: str
    target_bps: float
    latency_ms: float  # algorithmic: frame + lookahead
    run: Callable[[np.ndarray], Coded]
    notes: str = ""


# -- our codec ----------------------------------------------------------------------------------------------------
def codec_systems(
    codec_dir: str | Path,
    n_qs: tuple[int, ...] = (8, 4),
    name: str = "ours",
    runtimes: tuple[str, ...] = ("eager",),
) -> list[System]:
    """Our codec (any version) with the first ``n_q`` codebooks, streamed 20 ms at a time (what a client hears).

    ``runtimes``: ``eager`` (the codec's own PyTorch stream) and/or ``onnxruntime`` (the same step exported to
    ONNX, :mod:`custom_model.codec.onnx_stream`, one thread; built and checked against the eager stream before the
    clock starts, the check's result goes into the row's notes). Rows are named
    ``"{name} v{version} {n_q}x{codebook_size}"``, with `` onnxruntime`` appended for that runtime.
    """
    import torch

    from . import load_codec

    codec = load_codec(codec_dir, map_location="cpu")

    def make(n_q: int) -> Callable[[np.ndarray], Coded]:
        def run(x: np.ndarray) -> Coded:
            stream = codec.streaming(batch_size=1)
            n_frames = math.ceil(x.size / FRAME)
            padded = np.zeros(n_frames * FRAME, dtype=np.float32)
            padded[: x.size] = x
            wav = torch.from_numpy(padded)[None, None]
            outs, times, cpu = [], [], 0.0
            for i in range(n_frames):
                t0, c0 = time.perf_counter(), time.thread_time()
                codes = stream.encode_step(wav[..., i * FRAME : (i + 1) * FRAME])
                y = stream.decode_step(codes[:, :n_q])
                times.append(time.perf_counter() - t0)
                cpu += time.thread_time() - c0
                outs.append(y)
            y = torch.cat(outs, dim=-1)[0, 0, : x.size].numpy()
            bits = int(n_frames * n_q * math.log2(codec.codebook_size))
            return Coded(y, bits=bits, frame_times_s=times, cpu_s=cpu)

        return run

    def make_ort(n_q: int) -> tuple[Callable[[np.ndarray], Coded], str]:
        from .onnx_stream import OnnxStreamCodec

        ort = OnnxStreamCodec(codec, n_q=n_q, threads=1)
        check = ort.check_parity(codec)
        verdict = (
            f"codes identical to eager over {check['frames']} frames, audio within {check['max_audio_diff']:.1e}"
            if check["codes_identical"]
            else f"NOT identical to eager: codes differ within {check['frames']} frames"
        )

        def run(x: np.ndarray) -> Coded:
            enc, dec = ort.encoder_state(1), ort.decoder_state(1)
            n_frames = math.ceil(x.size / FRAME)
            padded = np.zeros((n_frames, 1, FRAME), dtype=np.float32)
            padded.reshape(-1)[: x.size] = x
            outs, times, cpu = [], [], 0.0
            for i in range(n_frames):
                t0, c0 = time.perf_counter(), time.thread_time()
                codes, enc = ort.encode_frame(padded[i], enc)
                y, dec = ort.decode_frame(codes, dec)
                times.append(time.perf_counter() - t0)
                cpu += time.thread_time() - c0
                outs.append(y[0])
            y = np.concatenate(outs)[: x.size]
            bits = int(n_frames * n_q * math.log2(codec.codebook_size))
            return Coded(y, bits=bits, frame_times_s=times, cpu_s=cpu)

        return run, verdict

    systems = []
    for runtime in runtimes:
        if runtime not in ("eager", "onnxruntime"):
            raise ValueError(f"runtime must be eager or onnxruntime, got {runtime!r}")
        for n_q in n_qs:
            label = f"{name} v{codec.version} {n_q}x{codec.codebook_size}"
            if runtime == "eager":
                run, notes = make(n_q), "streamed 20 ms at a time (PyTorch eager)"
            else:
                run, verdict = make_ort(n_q)
                label, notes = f"{label} onnxruntime", f"streamed 20 ms at a time (ONNX Runtime); {verdict}"
            systems.append(System(label, codec.bitrate_bps(n_q), 1000.0 * FRAME / SR, run, notes=notes))
    return systems


# -- Opus ---------------------------------------------------------------------------------------------------------
OPUS_APPLICATION_VOIP = 2048
OPUS_SET_BITRATE = 4002
OPUS_SET_VBR = 4006
OPUS_SET_BANDWIDTH = 4008
OPUS_SET_COMPLEXITY = 4010
OPUS_GET_LOOKAHEAD = 4027
OPUS_AUTO = -1000
OPUS_BANDWIDTH_WIDEBAND = 1103


def load_libopus() -> ctypes.CDLL:
    """libopus from PyAV's wheel (``av.libs``), else the system's."""
    try:
        import av

        here = Path(av.__file__).resolve().parent
        candidates = sorted(glob.glob(str(here.parent / "av.libs" / "libopus*.so*")))
    except ModuleNotFoundError:
        candidates = []
    candidates += [p for p in [ctypes.util.find_library("opus")] if p]
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.opus_encoder_create.restype = ctypes.c_void_p
        lib.opus_decoder_create.restype = ctypes.c_void_p
        lib.opus_get_version_string.restype = ctypes.c_char_p
        lib.opus_encode.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_int32,
        ]
        lib.opus_decode.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int32,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.opus_encoder_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
        lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        return lib
    raise ModuleNotFoundError(
        "libopus not found: pip install av (its wheel ships libopus) or apt-get install libopus0"
    )


def opus_system(bitrate: int, bandwidth: str = "auto", lib: ctypes.CDLL | None = None) -> System:
    """Opus (VoIP mode, VBR, complexity 10, 20 ms frames) at ``bitrate`` bps; ``bandwidth`` auto or wb."""
    lib = lib or load_libopus()
    if bandwidth not in ("auto", "wb"):
        raise ValueError(f"bandwidth must be auto or wb, got {bandwidth!r}")

    def ctl(enc, request: int, value: int) -> None:
        err = lib.opus_encoder_ctl(ctypes.c_void_p(enc), request, ctypes.c_int32(value))
        if err != 0:
            raise RuntimeError(f"opus_encoder_ctl({request}, {value}) failed with {err}")

    def lookahead() -> int:
        err = ctypes.c_int()
        enc = lib.opus_encoder_create(SR, 1, OPUS_APPLICATION_VOIP, ctypes.byref(err))
        out = ctypes.c_int32()
        lib.opus_encoder_ctl.argtypes = None  # variadic call with a pointer argument
        lib.opus_encoder_ctl(ctypes.c_void_p(enc), OPUS_GET_LOOKAHEAD, ctypes.byref(out))
        lib.opus_encoder_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.opus_encoder_destroy(enc)
        return int(out.value)

    delay = lookahead()

    def run(x: np.ndarray) -> Coded:
        err = ctypes.c_int()
        enc = lib.opus_encoder_create(SR, 1, OPUS_APPLICATION_VOIP, ctypes.byref(err))
        dec = lib.opus_decoder_create(SR, 1, ctypes.byref(err))
        if not enc or not dec:
            raise RuntimeError(f"libopus could not create an encoder/decoder (error {err.value})")
        try:
            ctl(enc, OPUS_SET_BITRATE, bitrate)
            ctl(enc, OPUS_SET_VBR, 1)
            ctl(enc, OPUS_SET_COMPLEXITY, 10)
            ctl(enc, OPUS_SET_BANDWIDTH, OPUS_BANDWIDTH_WIDEBAND if bandwidth == "wb" else OPUS_AUTO)
            n_frames = math.ceil((x.size + delay) / FRAME)  # flush the lookahead with zeros
            pcm = np.zeros(n_frames * FRAME, dtype=np.int16)
            pcm[: x.size] = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
            packet = (ctypes.c_ubyte * 1500)()
            out = np.zeros(n_frames * FRAME, dtype=np.int16)
            bits, times, cpu = 0, [], 0.0
            for i in range(n_frames):
                frame = np.ascontiguousarray(pcm[i * FRAME : (i + 1) * FRAME])
                t0, c0 = time.perf_counter(), time.thread_time()
                n = lib.opus_encode(ctypes.c_void_p(enc), frame.ctypes.data, FRAME, packet, 1500)
                if n < 0:
                    raise RuntimeError(f"opus_encode failed with {n}")
                got = lib.opus_decode(ctypes.c_void_p(dec), packet, n, out[i * FRAME :].ctypes.data, FRAME, 0)
                times.append(time.perf_counter() - t0)
                cpu += time.thread_time() - c0
                if got != FRAME:
                    raise RuntimeError(f"opus_decode returned {got} samples, expected {FRAME}")
                if i * FRAME < x.size:  # packets only needed to flush the lookahead are not counted
                    bits += 8 * n
        finally:
            lib.opus_encoder_destroy(enc)
            lib.opus_decoder_destroy(dec)
        y = out[delay : delay + x.size].astype(np.float32) / 32768.0
        return Coded(y, bits=bits, frame_times_s=times, cpu_s=cpu)

    version = lib.opus_get_version_string().decode()
    return System(
        f"opus {bitrate / 1000:g}k {bandwidth}",
        float(bitrate),
        20.0 + 1000.0 * delay / SR,
        run,
        notes=f"{version}, VoIP, VBR, 20 ms frames, lookahead {delay} samples",
    )


# -- Codec2 -------------------------------------------------------------------------------------------------------
def codec2_system(mode: int) -> System:
    """Codec2 (narrow band, 8 kHz) at ``mode`` bps; pycodec2 must be installed."""
    import pycodec2
    import soxr

    probe = pycodec2.Codec2(mode)
    spf = probe.samples_per_frame()

    def run(x: np.ndarray) -> Coded:
        c2 = pycodec2.Codec2(mode)
        x8 = soxr.resample(x, SR, 8000, quality="HQ")
        n_frames = math.ceil(x8.size / spf)
        pcm = np.zeros(n_frames * spf, dtype=np.int16)
        pcm[: x8.size] = np.clip(np.round(x8 * 32767), -32768, 32767).astype(np.int16)
        outs, bits, times, cpu = [], 0, [], 0.0
        for i in range(n_frames):
            t0, c0 = time.perf_counter(), time.thread_time()
            packet = c2.encode(pcm[i * spf : (i + 1) * spf])
            outs.append(c2.decode(packet))
            times.append(time.perf_counter() - t0)
            cpu += time.thread_time() - c0
            bits += c2.bits_per_frame()
        y8 = np.concatenate(outs).astype(np.float32) / 32768.0
        y = soxr.resample(y8, 8000, SR, quality="HQ")
        y = np.pad(y, (0, max(0, x.size - y.size)))[: x.size]
        # Codec2 frames of spf samples at 8 kHz; report time per 20 ms of audio.
        scale = (FRAME / SR) / (spf / 8000)
        return Coded(y, bits=bits, frame_times_s=[t * scale for t in times], cpu_s=cpu)

    return System(
        f"codec2 {mode / 1000:g}k",
        float(mode),
        1000.0 * spf / 8000,
        run,
        notes="narrow band (8 kHz), resampled from/to 16 kHz; RTF without resampling",
    )


# -- running ------------------------------------------------------------------------------------------------------
def align(ref: np.ndarray, deg: np.ndarray, max_lag: int = 800) -> int:
    """Lag (samples, >= 0) of ``deg`` behind ``ref`` by cross-correlation, for reporting a residual delay."""
    n = min(ref.size, deg.size, SR * 4)
    best, best_lag = -np.inf, 0
    for lag in range(0, max_lag + 1, 4):
        c = float(np.dot(ref[: n - lag], deg[lag:n]))
        if c > best:
            best, best_lag = c, lag
    return best_lag


def default_systems(
    codec_dirs: str | Path | list | None, runtimes: tuple[str, ...] = ("eager",)
) -> list[System]:
    """Our codec(s) (one folder or a list) in each of ``runtimes``, Opus at 4 and 6 kbps (auto and wide band),
    Codec2 at 3.2 and 2.4 kbps. Without onnxruntime installed its rows are left out with a printed reason."""
    if isinstance(codec_dirs, (str, Path)):
        codec_dirs = [codec_dirs]
    systems = []
    for d in codec_dirs or []:
        for runtime in runtimes:
            try:
                systems += codec_systems(d, runtimes=(runtime,))
            except ModuleNotFoundError as exc:
                print(f"[codec-bench] {d}: no {runtime} rows: {exc}")
    lib = load_libopus()
    for bitrate in (4000, 6000):
        for bw in ("auto", "wb"):
            systems.append(opus_system(bitrate, bw, lib))
    try:
        systems += [codec2_system(3200), codec2_system(2400)]
    except ModuleNotFoundError:
        pass
    return systems


def run_codec_benchmark(
    codec_dir: str | Path | list | None,
    data: str,
    split: str | None = "test",
    limit: int | None = None,
    systems: list[System] | None = None,
    out_json: str | Path | None = None,
    runtimes: tuple[str, ...] = ("eager",),
) -> list[dict]:
    """Score every system on the same utterances; one row per system (means over utterances)."""
    import torch

    from harness.audio import AudioError
    from harness.data import load_utterances
    from harness.results import machine_info, package_versions

    load_start = list(os.getloadavg())
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    systems = systems if systems is not None else default_systems(codec_dir, runtimes)
    utts = load_utterances(data, split=split, limit=limit)
    if not utts:
        raise ValueError(f"{data}: no utterances in split {split!r}")
    signals: list[tuple[str, np.ndarray]] = []
    for u in utts:
        try:
            signals.append((u.id, u.load_audio(SR)))
        except AudioError as exc:
            print(f"[codec-bench] skipping {u.id}: {exc}")
    rows = []
    for system in systems:
        per_utt, seconds, bits, frame_times, cpu, errors = [], 0.0, 0, [], 0.0, []
        for uid, x in signals:
            try:
                coded = system.run(x)
            except Exception as exc:  # one failing utterance must not lose the rest of the run
                errors.append(f"{uid}: {type(exc).__name__}: {exc}")
                continue
            per_utt.append(all_metrics(x, coded.audio, SR))
            seconds += x.size / SR
            bits += coded.bits
            frame_times += coded.frame_times_s
            cpu += coded.cpu_s
        row = {
            "system": system.name,
            "n": len(per_utt),
            "target_kbps": system.target_bps / 1000,
            "kbps": bits / seconds / 1000 if seconds else math.nan,
            "latency_ms": system.latency_ms,
            "notes": system.notes,
            "errors": errors,
        }
        for key in ("pesq_wb", "stoi", "si_sdr_db", "log_mel_dist"):
            vals = np.array([m[key] for m in per_utt], dtype=np.float64)
            row[key] = float(np.nanmean(vals)) if vals.size else math.nan
        ft = np.array(frame_times)
        row["rtf"] = float(ft.mean() / (FRAME / SR)) if ft.size else math.nan
        row["rtf_cpu"] = cpu / seconds if seconds else math.nan
        row["frame_ms_p95"] = float(np.percentile(ft, 95) * 1000) if ft.size else math.nan
        rows.append(row)
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(
            json.dumps(
                {
                    # the figures are this CPU's: record which one, what it ran and how busy it was
                    "machine": machine_info(),
                    "versions": package_versions(),
                    "load_average": {"start": load_start, "end": list(os.getloadavg())},
                    "data": data,
                    "split": split,
                    "n_utterances": len(signals),
                    "seconds": sum(x.size for _, x in signals) / SR,
                    "rows": rows,
                },
                indent=2,
            )
            + "\n"
        )
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The benchmark as a Markdown table (higher PESQ/STOI/SI-SDR better; lower log-mel, latency, RTF better)."""
    head = (
        "| system | kbps (target) | PESQ-WB | STOI | SI-SDR dB | log-mel dist | latency ms | RTF wall |"
        " RTF CPU | frame p95 ms | n |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['system']} | {r['kbps']:.2f} ({r['target_kbps']:g}) | {r['pesq_wb']:.2f} | {r['stoi']:.3f} "
        f"| {r['si_sdr_db']:.1f} | {r['log_mel_dist']:.3f} | {r['latency_ms']:.1f} | {r['rtf']:.4f} | {r['rtf_cpu']:.4f} "
        f"| {r['frame_ms_p95']:.2f} | {r['n']} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m custom_model.codec.bench", description="Our codec vs Opus/Codec2"
    )
    p.add_argument(
        "--codec",
        action="append",
        default=None,
        help="a codec's save_pretrained folder (repeat to compare several in the same run; default: "
        "custom_model/checkpoints/codec-v2-small)",
    )
    p.add_argument("--data", default="telugu-mini")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--out", default="reports/codec.json", help="JSON results; the table is printed")
    p.add_argument("--md", default=None, help="also write the Markdown table to this file")
    p.add_argument(
        "--runtime",
        default="eager,onnxruntime",
        help="how our codecs are streamed, comma-separated: eager (PyTorch) and/or onnxruntime (the exported "
        "step, checked against eager first); default: both",
    )
    args = p.parse_args(argv)
    runtimes = tuple(r for r in args.runtime.split(",") if r)
    bad = [r for r in runtimes if r not in ("eager", "onnxruntime")]
    if bad or not runtimes:
        p.error(f"--runtime takes eager and/or onnxruntime, got {args.runtime!r}")
    codecs = args.codec or ["custom_model/checkpoints/codec-v2-small"]
    rows = run_codec_benchmark(
        codecs, args.data, split=args.split or None, limit=args.limit, out_json=args.out, runtimes=runtimes
    )
    table = markdown_table(rows)
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(table)
    print(table)


if __name__ == "__main__":
    main()
