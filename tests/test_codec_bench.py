"""The codec benchmark on a tiny random codec (untrained, named so) and real libopus: the pipeline, not quality."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("vector_quantize_pytorch")
pytest.importorskip("pesq")
pytest.importorskip("pystoi")

from custom_model.codec import Codec, CodecConfig, CodecV2, CodecV2Config  # noqa: E402
from custom_model.codec.bench import (  # noqa: E402
    codec_systems,
    load_libopus,
    markdown_table,
    opus_system,
    run_codec_benchmark,
)


@pytest.fixture(scope="module", params=[1, 2])
def tiny_random_codec_dir(tmp_path_factory, request):
    """A tiny random codec of each version (untrained: the pipeline, not quality)."""
    torch.manual_seed(0)
    if request.param == 1:
        codec = Codec(CodecConfig.preset("tiny"))
        codec.quantizer.init_random_()
    else:
        codec = CodecV2(CodecV2Config.preset("tiny"))
    return codec.save_pretrained(tmp_path_factory.mktemp(f"tiny-random-codec-v{request.param}"))


def test_bench_scores_our_codec_and_opus_side_by_side(tiny_random_codec_dir, tmp_path):
    try:
        lib = load_libopus()
    except ModuleNotFoundError:
        pytest.skip("no libopus (pip install av)")
    systems = codec_systems(tiny_random_codec_dir, n_qs=(8, 2)) + [opus_system(6000, "auto", lib)]
    rows = run_codec_benchmark(
        None, "synthetic-clips", split=None, limit=2, systems=systems, out_json=tmp_path / "codec.json"
    )
    v = json.loads((tiny_random_codec_dir / "config.json").read_text()).get("version", 1)
    by_name = {r["system"].replace(f"ours v{v} ", "ours "): r for r in rows}
    assert set(by_name) == {"ours 8x1024", "ours 2x1024", "opus 6k auto"}
    for r in rows:
        assert r["n"] == 2 and not r["errors"]
        for key in ("pesq_wb", "stoi", "si_sdr_db", "log_mel_dist", "rtf", "rtf_cpu", "kbps"):
            assert math.isfinite(r[key]), (r["system"], key)
    # Our bitrate is exact: 50 frames/s x n_q x 10 bits (plus the padded last frame).
    assert by_name["ours 8x1024"]["kbps"] == pytest.approx(4.0, rel=0.05)
    assert by_name["ours 2x1024"]["kbps"] == pytest.approx(1.0, rel=0.05)
    assert by_name["ours 8x1024"]["latency_ms"] == 20.0
    opus = by_name["opus 6k auto"]
    assert 20.0 < opus["latency_ms"] < 30.0  # 20 ms frame + libopus lookahead
    # Opus output is aligned with its input (lookahead removed): a misalignment of even 1 ms ruins SI-SDR.
    assert opus["si_sdr_db"] > 0.0 and opus["stoi"] > 0.7
    # An untrained random codec is far from the input: the metrics tell them apart.
    assert by_name["ours 8x1024"]["pesq_wb"] < opus["pesq_wb"]
    saved = json.loads((tmp_path / "codec.json").read_text())
    assert saved["n_utterances"] == 2 and len(saved["rows"]) == 3
    # timings are a CPU's: the file says which one and how loaded the machine was
    assert saved["machine"]["cpu_count"] and "cpu_id" in saved["machine"] and saved["versions"]["torch"]
    assert len(saved["load_average"]["start"]) == 3 and len(saved["load_average"]["end"]) == 3
    table = markdown_table(rows)
    assert table.count("\n") == 2 + 3 and "opus 6k auto" in table


def test_onnxruntime_rows_stream_the_same_audio_as_eager(tiny_random_codec_dir, tmp_path, monkeypatch):
    """Both codec versions: the exported step is checked before timing and scores what eager scores."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("S2S_BENCH_CACHE", str(tmp_path / "cache"))
    systems = codec_systems(tiny_random_codec_dir, n_qs=(8, 2), runtimes=("eager", "onnxruntime"))
    assert [s.name.endswith(" onnxruntime") for s in systems] == [False, False, True, True]
    for s in systems[2:]:
        assert "codes identical to eager" in s.notes, s.notes
    rows = run_codec_benchmark(None, "synthetic-clips", split=None, limit=2, systems=systems)
    eager, ort = rows[:2], rows[2:]
    for a, b in zip(eager, ort, strict=True):
        assert b["n"] == 2 and not b["errors"]
        assert b["kbps"] == a["kbps"]
        for key in ("pesq_wb", "stoi", "si_sdr_db", "log_mel_dist"):
            assert b[key] == pytest.approx(a[key], abs=1e-2), (b["system"], key)


def test_the_bench_cli_refuses_an_unknown_runtime(capsys):
    from custom_model.codec.bench import main

    with pytest.raises(SystemExit):
        main(["--runtime", "tensorrt"])
    assert "eager and/or onnxruntime" in capsys.readouterr().err


def test_forced_wideband_opus_keeps_energy_above_4khz():
    try:
        lib = load_libopus()
    except ModuleNotFoundError:
        pytest.skip("no libopus (pip install av)")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(16000) * 0.1).astype(np.float32)

    def high_band_share(y: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(y)) ** 2
        return float(spec[len(spec) // 2 :].sum() / spec.sum())

    auto = opus_system(6000, "auto", lib).run(x)
    wide = opus_system(6000, "wb", lib).run(x)
    assert high_band_share(wide.audio) > 2 * high_band_share(auto.audio)
