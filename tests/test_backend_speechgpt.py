"""SpeechGPT rebuilt on transformers, on tiny FAKE models (random HuBERT and centroids, a scripted tiny Llama with
unit tokens, a random unit vocoder), plus the LoRA recipe on toy unit sequences."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")

import baseline_models as bm  # noqa: E402
import torch  # noqa: E402

from backends import _hf  # noqa: E402
from backends.speechgpt import SpeechGPTBackend, text_to_units, units_to_text  # noqa: E402
from backends.speechgpt.finetune import LoraRecipe, main, read_unit_jsonl, train_lora  # noqa: E402
from backends.speechgpt.vocoder import UnitHiFiGAN, fold_weight_norm, load_unit_vocoder  # noqa: E402
from harness.backend import BackendError  # noqa: E402

ANSWER_UNITS = [3, 7, 5, 11]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    paths = bm.build_speechgpt(tmp_path_factory.mktemp("speechgpt"))
    bm.script_llm(paths["llm"], units_to_text(ANSWER_UNITS))
    yield paths
    _hf.clear_shared()


def backend_for(models, **extra):
    opts = {k: str(v) for k, v in models.items()}
    return SpeechGPTBackend(
        **opts, device="cpu", prompt="{units}<|assistant|>", max_new_tokens=16, hubert_layer=2, **extra
    )


def run_turn(backend, audio):
    session = backend.open_session()
    session.push(audio)
    session.end_input()
    chunks = []
    while not session.done:
        chunk = session.poll(timeout=5.0)
        if chunk is not None:
            chunks.append(chunk)
    return chunks


def test_unit_text_round_trip():
    assert units_to_text([1, 22]) == "<sosp><1><22><eosp>"
    assert text_to_units("[SpeechGPT]: <sosp><4><5><999><eosp><eoa>", num_units=100) == [4, 5]
    assert text_to_units("<sosp><1><eosp> later <sosp><2><3>", num_units=10) == [2, 3]


def test_turn_goes_units_in_llm_units_out_vocoder(models):
    backend = backend_for(models)
    backend.load()
    chunks = run_turn(backend, bm.silence_and_tone())
    marks = [m for c in chunks for m in c.marks]
    assert marks == ["units_ready", "llm_first_token", "llm_final", "tts_first_audio"]
    units_in = text_to_units(chunks[0].text, 20)
    assert units_in and all(a != b for a, b in zip(units_in, units_in[1:], strict=False))  # repeats merged
    audio = chunks[-1].audio
    assert audio.size == len(ANSWER_UNITS) * 320 and np.abs(audio).max() <= 1.0  # 20 ms of 16 kHz per unit
    assert chunks[-1].text == units_to_text(ANSWER_UNITS)


def test_missing_centroids_are_named(models, tmp_path):
    with pytest.raises(BackendError, match="k-means centroids"):
        backend_for(models, centroids=str(tmp_path / "none.npy")).load()


def test_weight_norm_checkpoints_fold_to_the_same_convolution():
    conv = torch.nn.utils.weight_norm(torch.nn.Conv1d(4, 6, 3))
    folded = fold_weight_norm(conv.state_dict())
    assert set(folded) == {"weight", "bias"}
    assert torch.allclose(folded["weight"], conv.weight, atol=1e-6)


def test_vocoder_with_duration_prediction_loads_from_a_fairseq_style_checkpoint(tmp_path):
    model = UnitHiFiGAN(bm.TINY_VOCODER(dur_prediction=True))
    (tmp_path / "config.json").write_text(json.dumps({**bm.TINY_VOCODER().__dict__, "dur_prediction": True}))
    torch.save({"generator": model.state_dict()}, tmp_path / "g_00000001")
    loaded = load_unit_vocoder(tmp_path)
    wave = loaded(torch.tensor([[1, 2, 3]]))
    assert wave.shape[1] % 320 == 0 and wave.shape[1] >= 3 * 320  # each unit lasts at least one frame


def test_lora_recipe_lowers_the_loss_and_the_backend_loads_the_adapter(models, tmp_path):
    rng = np.random.default_rng(0)
    sequences = [list(rng.choice([2, 4, 6, 8], size=12)) for _ in range(6)]
    sequences = [[int(u) for u in s] for s in sequences]
    units = tmp_path / "units.jsonl"
    units.write_text("\n".join(json.dumps({"units": s}) for s in sequences))
    assert read_unit_jsonl(units) == sequences
    adapter = tmp_path / "adapter"
    losses = train_lora(
        models["llm"], sequences, adapter, LoraRecipe(steps=25, batch_size=3, lr=1e-2, rank=4)
    )
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    assert (adapter / "adapter_config.json").exists()
    backend = backend_for(models, lora=str(adapter))
    backend.load()
    assert type(backend.parts["llm"][0]).__name__ == "PeftModelForCausalLM"
    session = backend.open_session()
    session.push(bm.silence_and_tone(0.5))
    session.end_input()
    answer = None
    while not session.done:
        try:
            chunk = session.poll(timeout=5.0)
        except BackendError as exc:  # the adapted toy model may stop saying units: reported, not hidden
            assert "no unit tokens" in str(exc)
            break
        if chunk is not None and "llm_final" in chunk.marks:
            answer = chunk.text
    assert answer is not None and answer != units_to_text(ANSWER_UNITS) + "<|end|>"  # the adapter changed it


def test_lora_cli_refuses_a_bad_units_file(models, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"units": [1, 2]}\n{"oops": 1}\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        main(["--llm", str(models["llm"]), "--units", str(bad), "--out", str(tmp_path / "a")])
