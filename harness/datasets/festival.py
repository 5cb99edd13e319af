"""Telugu speech from Debian's festival + ``festvox-te-nsk`` (a diphone voice cut from recorded Telugu speech).

Only used when the packages are installed (``apt-get install festival festvox-te-nsk festival-te``: the voice
needs festival-te's Telugu phone set and lexicon, which festvox-te-nsk only recommends). Festival's Telugu front end
segfaults on Latin letters, digits and many symbols, so text is cleaned to Telugu letters, spaces and ``. , ? !``
first; the voice needs ``Int_Method Simple`` (its default intonation model is missing). The output has a DC offset,
which is removed with a 20 Hz high-pass.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..audio import read_audio, resample

VOICE_DIR = Path("/usr/share/festival/voices/telugu/telugu_NSK_diphone")
PHONESET = Path("/usr/share/festival/telugu_scm/telugu_phones.scm")
"""festival-te's Telugu phone set (with its lexicon and tokeniser beside it): the voice cannot speak without it."""
VOICE_FN = "voice_telugu_NSK_diphone"
SPEAKER = "festival-te-nsk"
TIMEOUT_S = 60.0

_NOT_ALLOWED = re.compile(r"[^\u0C00-\u0C7F .,?!]")


def festival_available() -> tuple[bool, str]:
    """(available, detail) without raising."""
    exe = shutil.which("festival")
    if exe is None:
        return False, "festival is not installed (apt-get install festival festvox-te-nsk festival-te)"
    if not VOICE_DIR.is_dir():
        return (
            False,
            f"the Telugu voice is not installed ({VOICE_DIR} missing: apt-get install festvox-te-nsk)",
        )
    if not PHONESET.is_file():
        return (
            False,
            f"festival-te is not installed ({PHONESET} missing: the voice needs its Telugu phone set and "
            "lexicon; apt-get install festival-te)",
        )
    return True, exe


def clean_text(text: str) -> str:
    """Text festival's Telugu voice can speak: Telugu letters, spaces and ``. , ? !``; raises if nothing is left."""
    cleaned = _NOT_ALLOWED.sub(" ", text)
    cleaned = re.sub(r"\s+([.,?!])", r"\1", cleaned)
    cleaned = re.sub(r"([.,?!])[.,?!]+", r"\1", cleaned)
    cleaned = re.sub(r"\s+", " ", cleaned).strip(" ,").lstrip(".?!")
    if not re.search(r"[\u0C15-\u0C39\u0C05-\u0C14]", cleaned):
        raise ValueError(f"no Telugu letters left for festival to speak in {text!r}")
    return cleaned if cleaned[-1] in ".?!" else cleaned + "."


def remove_dc(x: np.ndarray, sr: int, cutoff_hz: float = 20.0) -> np.ndarray:
    """High-pass by subtracting a centred moving average (length ``sr / cutoff_hz``); float32 out."""
    x = np.asarray(x, dtype=np.float64)
    n = max(3, int(sr / cutoff_hz) | 1)
    if x.size < n:
        return (x - x.mean()).astype(np.float32)
    padded = np.pad(x, (n // 2, n // 2), mode="reflect")
    csum = np.concatenate(([0.0], np.cumsum(padded)))
    moving = (csum[n:] - csum[:-n]) / n
    return (x - moving).astype(np.float32)


def _script(items: list[tuple[str, str]], f0_mean: int, f0_std: int) -> str:
    """A festival script that speaks each (text, wav_path) in turn. ``Duration_Stretch`` is left alone: setting it
    makes this voice segfault."""
    lines = [f"({VOICE_FN})", "(Parameter.set 'Int_Method 'Simple)",
             f"(set! int_simple_params '((f0_mean {f0_mean}) (f0_std {f0_std})))"]  # fmt: skip
    for text, wav_path in items:
        quoted = text.replace("\\", " ").replace('"', " ")
        lines.append(f'(set! utt1 (Utterance Text "{quoted}"))')
        lines.append("(utt.synth utt1)")
        lines.append(f'(utt.save.wave utt1 "{wav_path}" \'riff)')
    return "\n".join(lines) + "\n"


def synthesize_many(
    texts: list[str], sample_rate: int = 16000, f0_mean: int = 115, f0_std: int = 15
) -> list[np.ndarray | RuntimeError]:
    """Speak many texts with one festival process (loading the voice once); one array or error per text.

    When festival crashes on a text, that text gets a ``RuntimeError`` and a new process goes on with the next.
    Each text is spoken independently of the others, so the result for a text does not depend on the batch.
    """
    ok, exe = festival_available()
    if not ok:
        raise RuntimeError(exe)
    results: list[np.ndarray | RuntimeError | None] = [None] * len(texts)
    spoken: list[str | None] = []
    for i, text in enumerate(texts):
        try:
            spoken.append(clean_text(text))
        except ValueError as exc:
            spoken.append(None)
            results[i] = RuntimeError(str(exc))
    todo = [i for i in range(len(texts)) if spoken[i] is not None]
    with tempfile.TemporaryDirectory(prefix="s2s-festival-") as tmp:
        while todo:
            wavs = {i: str(Path(tmp) / f"{i}.wav") for i in todo}
            script = Path(tmp) / "say.scm"
            script.write_text(
                _script([(spoken[i], wavs[i]) for i in todo], f0_mean, f0_std), encoding="utf-8"
            )
            try:
                proc = subprocess.run(
                    [exe, "-b", str(script)], capture_output=True, timeout=TIMEOUT_S + 2 * len(todo), cwd=tmp
                )
                code, err = proc.returncode, proc.stderr.decode("utf-8", "replace").strip()[-200:]
            except subprocess.TimeoutExpired:
                code, err = None, "timed out"
            done = 0
            for i in todo:
                if not Path(wavs[i]).exists() or (code != 0 and i == todo[-1]):
                    break
                x, sr = read_audio(wavs[i])
                results[i] = resample(remove_dc(x, sr), sr, sample_rate)
                done += 1
            if done == len(todo):
                break
            failed = todo[done]
            results[failed] = RuntimeError(f"festival failed (exit {code}) on {spoken[failed]!r}: {err}")
            todo = todo[done + 1 :]
    return results  # type: ignore[return-value]


def synthesize(text: str, sample_rate: int = 16000, f0_mean: int = 115, f0_std: int = 15) -> np.ndarray:
    """Float32 mono at ``sample_rate``. Raises ``RuntimeError`` naming the text when festival fails."""
    out = synthesize_many([text], sample_rate=sample_rate, f0_mean=f0_mean, f0_std=f0_std)[0]
    if isinstance(out, Exception):
        raise out
    return out
