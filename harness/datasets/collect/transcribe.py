"""The optional ``transcribe`` stage: a transcript per clip through the harness's ASR judge route.

``--asr whisper:path=/models/whisper-small`` (any spec ``s2s-bench score --asr`` takes) loads the judge from local
files only, with ``language="te"`` set explicitly, and writes its output to each clip's ``text`` (marked
``text_source`` with the judge's model, so nobody mistakes it for a human transcript). Without ``--asr`` the stage
passes clips through unchanged and the data card says transcripts were not made. A judge that cannot load (no
weights at the path, transformers missing) stops the run before any work with the judge's own message.

Word alignment is not done: the built-in judge returns text only (WhisperX / faster-whisper judges with word
timestamps would slot in here).
"""

from __future__ import annotations

from .manifest import Record
from .media import SAMPLE_RATE, load_recording
from .pipeline import Context, Unit

_judges: dict[str, object] = {}


def check_judge(spec: str) -> dict:
    """Create and load the judge once in the calling process; raises the judge's error (it says what to fix)."""
    from ...metrics.judges import create_judge

    judge = create_judge(spec)
    if hasattr(judge, "load"):
        judge.load()
    return dict(judge.info)


def _judge(spec: str):
    if spec not in _judges:
        from ...metrics.judges import create_judge

        _judges[spec] = create_judge(spec)
    return _judges[spec]


def process_transcribe(unit: Unit, params: dict, ctx: Context) -> list[Record]:
    clips = unit["dedup"]
    if not params.get("asr") or not clips:
        return list(clips)
    judge = _judge(params["asr"])
    x = load_recording(ctx, unit["loudness"][0])
    out = []
    for c in clips:
        y = x[int(c["start_s"] * SAMPLE_RATE) : int(c["end_s"] * SAMPLE_RATE)]
        out.append(
            {**c, "text": judge.transcribe(y, SAMPLE_RATE), "text_source": f"asr {judge.info.get('model')}"}
        )
    return out
