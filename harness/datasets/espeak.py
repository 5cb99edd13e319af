"""Telugu speech from espeak-ng, loaded from the ``espeakng-loader`` wheel through ctypes (no apt needed).

The wheel ships ``libespeak-ng.so`` and its ``espeak-ng-data`` folder (with the Telugu dictionary ``te_dict``).
Output is reproducible: the voice, rate, pitch and range are set and ``espeak_ng_SetRandSeed`` is called before
every utterance, so an utterance's samples do not depend on what was synthesised before it in the process.
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import resample

TARGET_SR = 16000

# espeak_AUDIO_OUTPUT / flags / parameters from speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 0x02
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4}

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


@dataclass(frozen=True)
class EspeakVoice:
    """One espeak-ng speaker: a voice name (``te`` or ``te+VARIANT``) plus prosody settings.

    ``rate`` is words per minute (espeak default 175), ``pitch`` and ``pitch_range`` are 0..100 (default 50).
    """

    name: str
    voice: str = "te"
    rate: int = 165
    pitch: int = 50
    pitch_range: int = 50
    volume: int = 100


# Speakers of the built-in sets: different variants (male/female timbres) and prosody.
ESPEAK_VOICES: tuple[EspeakVoice, ...] = (
    EspeakVoice("espeak-te-m1", "te+m1", rate=160, pitch=45),
    EspeakVoice("espeak-te-f2", "te+f2", rate=150, pitch=60),
    EspeakVoice("espeak-te-m3", "te+m3", rate=175, pitch=40, pitch_range=60),
    EspeakVoice("espeak-te-f4", "te+f4", rate=140, pitch=70, pitch_range=40),
    EspeakVoice("espeak-te-m7", "te+m7", rate=185, pitch=35),
    EspeakVoice("espeak-te-f5", "te+f5", rate=155, pitch=65, pitch_range=70),
)


def espeak_available() -> tuple[bool, str]:
    """(available, detail) without raising."""
    try:
        import espeakng_loader  # noqa: F401
    except ModuleNotFoundError:
        return False, "the 'espeakng-loader' package is not installed (pip install 's2s-bench[data]')"
    return True, "espeakng-loader wheel"


class EspeakEngine:
    """One espeak-ng instance per process (the library keeps global state); thread-safe through a lock."""

    _instance: EspeakEngine | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                "espeak-ng synthesis needs the 'espeakng-loader' package: pip install 's2s-bench[data]'"
            ) from None
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib = self._lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        data_path = espeakng_loader.get_data_path().encode()
        sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if sr <= 0:
            raise RuntimeError(
                f"espeak-ng failed to initialise with data path {data_path.decode()} (code {sr})"
            )
        self.native_sr = int(sr)
        self._chunks: list[np.ndarray] = []

        def _on_audio(wav, numsamples, _events):
            if numsamples > 0 and wav:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
            return 0

        self._callback = _SYNTH_CALLBACK(_on_audio)  # keep a reference: ctypes does not
        lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> EspeakEngine:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _check_voice(self, name: str) -> None:
        """espeak-ng silently falls back to its default for an unknown ``lang+variant``: refuse it instead."""
        import espeakng_loader

        lang, _, variant = name.partition("+")
        data = Path(espeakng_loader.get_data_path())
        if variant and not (data / "voices" / "!v" / variant).is_file():
            raise ValueError(
                f"espeak-ng has no voice variant {variant!r} (in {name!r}); try te+m1 .. te+m7, te+f1 .. te+f5"
            )
        if not any((data / "lang").rglob(lang)):
            raise ValueError(f"espeak-ng has no language {lang!r} (in {name!r}); Telugu is 'te'")

    def _synthesize_here(self, text: str, voice: EspeakVoice, seed: int) -> bytes:
        """Int16 native-rate samples as bytes, synthesised in this process (advances espeak's hidden state)."""
        lib = self._lib
        if lib.espeak_SetVoiceByName(voice.voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice.voice!r} (try 'te' or 'te+m1', 'te+f2', ...)")
        for key, value in (
            ("rate", voice.rate),
            ("volume", voice.volume),
            ("pitch", voice.pitch),
            ("range", voice.pitch_range),
        ):
            lib.espeak_SetParameter(_PARAM[key], int(value), 0)
        lib.espeak_ng_SetRandSeed(int(seed))
        self._chunks = []
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        err = lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
        lib.espeak_Synchronize()
        chunks, self._chunks = self._chunks, []
        if err != 0:
            raise RuntimeError(f"espeak-ng failed on {text[:40]!r} with voice {voice.voice} (code {err})")
        return np.concatenate(chunks).astype("<i2").tobytes() if chunks else b""

    def synthesize_native(self, text: str, voice: EspeakVoice, seed: int = 0) -> np.ndarray:
        """Float32 samples in [-1, 1) at :attr:`native_sr` (22050 Hz for the wheel's voices).

        espeak-ng keeps state between utterances (wavegen phase, echo buffer, flutter position) that
        ``espeak_ng_SetRandSeed`` does not reset, so the same text comes out a few samples different depending on
        what was spoken before. To make every utterance reproducible on its own, it is synthesised in a forked
        child of a process whose espeak has been initialised but has never spoken.
        """
        self._check_voice(voice.voice)
        with self._lock:
            raw = _in_fork(lambda: self._synthesize_here(text, voice, seed)) if hasattr(os, "fork") else None
            if raw is None:  # no fork (Windows): correct speech, not bit-reproducible
                raw = self._synthesize_here(text, voice, seed)
        return (np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0).astype(np.float32)

    def synthesize(
        self, text: str, voice: EspeakVoice, seed: int = 0, sample_rate: int = TARGET_SR
    ) -> np.ndarray:
        """Float32 mono at ``sample_rate`` with leading/trailing silence trimmed to 100 ms."""
        x = self.synthesize_native(text, voice, seed)
        x = trim_silence(x, self.native_sr)
        return resample(x, self.native_sr, sample_rate)


def _in_fork(fn) -> bytes:
    """Run ``fn() -> bytes`` in a forked child and return its bytes; errors are re-raised here as RuntimeError."""
    import pickle

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into the caller's stack
        code = 0
        try:
            os.close(r)
            try:
                payload = pickle.dumps((True, fn()))
            except BaseException as exc:  # noqa: BLE001 - report every failure to the parent
                payload = pickle.dumps((False, f"{type(exc).__name__}: {exc}"))
            with os.fdopen(w, "wb") as fh:
                fh.write(payload)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    if not data:
        raise RuntimeError("espeak-ng synthesis child process died without output")
    ok, value = pickle.loads(data)
    if not ok:
        raise RuntimeError(value)
    return value


def trim_silence(x: np.ndarray, sr: int, keep_s: float = 0.1, threshold: float = 1e-3) -> np.ndarray:
    """Cut leading and trailing near-silence, keeping ``keep_s`` seconds of it on each side."""
    loud = np.flatnonzero(np.abs(x) > threshold)
    if loud.size == 0:
        return x
    keep = int(keep_s * sr)
    return x[max(0, loud[0] - keep) : min(x.size, loud[-1] + keep + 1)]


def synthesize(text: str, voice: EspeakVoice, seed: int = 0, sample_rate: int = TARGET_SR) -> np.ndarray:
    """Synthesise ``text`` with ``voice``; float32 mono at ``sample_rate`` (default 16 kHz)."""
    return EspeakEngine.get().synthesize(text, voice, seed=seed, sample_rate=sample_rate)
