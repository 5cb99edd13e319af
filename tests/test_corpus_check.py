"""``data check`` reads a corpus exactly as a run does (``CORPUS:PATH``, its transcripts, its splits), so a folder
in a slightly wrong layout is caught before a run, and the run and the check agree."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from harness.cli import main

ROWS = [f"{i}\tclip{i}.wav\tనమస్కారం {i}\tనమస్కారం {i}\tన మ\t9600\tMALE" for i in range(5)]


def fleurs_folder(root, audio_sub: str, present: range = range(5)):
    """FLEURS te_in with test.tsv, and its wavs under ``root/<audio_sub>`` (the published one: audio/test)."""
    (root / audio_sub).mkdir(parents=True, exist_ok=True)
    (root / "test.tsv").write_text("\n".join(ROWS) + "\n", encoding="utf-8")
    tone = (0.3 * np.sin(2 * np.pi * 200 * np.arange(9600) / 16000)).astype(np.float32)
    for i in present:
        sf.write(root / audio_sub / f"clip{i}.wav", tone, 16000, subtype="PCM_16")
    return root


def run(root, tmp_path, *extra) -> int:
    out = tmp_path / "run"
    args = ["run", "-b", "loopback", "--data", f"fleurs:{root}", "--pacing", "fast", "--warmup", "0", "-q"]
    return main([*args, "--out", str(out), *extra])


def test_check_and_run_agree_on_a_folder_in_a_slightly_wrong_layout(tmp_path, capsys):
    root = fleurs_folder(
        tmp_path / "te_in", "wavs/test", present=range(4)
    )  # not audio/test; one clip missing
    assert main(["data", "check", f"fleurs:{root}"]) == 1
    out = capsys.readouterr().out
    assert "clip4.wav" in out and "file not found" in out and "5 files checked: 4 ok" in out
    assert run(root, tmp_path) == 0  # the loader finds the clips by name: 4 of 5 ok, within the policy
    summary = capsys.readouterr().out
    assert "| loopback | 4/5 (80%) |" in summary


def test_a_layout_with_no_audio_where_the_transcripts_say_fails_the_check_and_the_run(tmp_path, capsys):
    root = fleurs_folder(tmp_path / "te_in", "audio/test", present=range(0))
    (root / "elsewhere").mkdir()
    sf.write(root / "elsewhere" / "other.wav", np.full(16000, 0.1, np.float32), 16000)
    assert main(["data", "check", f"fleurs:{root}"]) == 1
    assert "5 files checked: 0 ok" in capsys.readouterr().out
    assert run(root, tmp_path) == 1  # 0/5 ok is not a passing run
    assert main(["data", "check", str(root)]) == 0  # the folder's own audio is fine ...
    assert f"fleurs:{root}" in capsys.readouterr().out  # ... and the check says how a run reads the folder


def test_an_unknown_split_lists_the_splits_that_exist(tmp_path, capsys):
    root = fleurs_folder(tmp_path / "te_in", "audio/test")
    assert run(root, tmp_path, "--split", "tst") == 2
    assert "has no split 'tst'; its splits: test" in capsys.readouterr().err
    assert main(["data", "check", f"fleurs:{root}", "--split", "tst"]) == 2
    assert "its splits: test" in capsys.readouterr().err
    assert main(["data", "check", f"fleurs:{root}", "--split", "test"]) == 0


@pytest.mark.parametrize("spelling", ["fleurs:{root}", "{root}/manifest.jsonl"])
def test_data_check_takes_every_spelling_run_takes(tmp_path, capsys, spelling):
    root = fleurs_folder(tmp_path / "te_in", "audio/test")
    (root / "manifest.jsonl").write_text('{"id": "m", "audio": "audio/test/clip0.wav"}\n', encoding="utf-8")
    assert main(["data", "check", spelling.format(root=root)]) == 0
