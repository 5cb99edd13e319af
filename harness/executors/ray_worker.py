"""What runs inside a Ray worker: one shard of one backend through the ordinary runner, streamed back as it goes.

The worker measures exactly as ``s2s-bench run --shard I/N`` does on a machine of its own (the same
:func:`harness.runner.run_benchmark`, into a temporary run folder on the worker), and streams what the runner
writes: the lines of ``events.jsonl`` as they are flushed (every 0.1 s, and after each utterance), each
finished utterance's output WAV before the line that ends it, and run.json when the runner writes it. So the
driver's copy of the shard is never ahead of what was measured and never behind by more than one flush: when the
worker dies, the driver keeps everything that arrived and resumes the shard elsewhere from it (the runner's
``--resume``: finished utterances are kept, the interrupted one is redone as a new attempt).

Plain functions (the driver wraps them with ``ray.remote``): this module imports Ray nowhere.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

TAIL_S = 0.1
"""How often the worker looks for new lines in its event log (the log itself flushes every 0.1 s)."""


def _worker_identity() -> dict:
    """The worker's process id, host and Ray node (its machine is in the runner's ``run`` line)."""
    import socket

    node = None
    try:
        import ray

        node = ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside Ray (a test calls this directly): no node id
        pass
    return {"pid": os.getpid(), "hostname": socket.gethostname(), "node_id": node}


def run_shard(job: dict, prior_meta: dict | None = None, prior_events: bytes | None = None) -> Iterator[dict]:
    """Measure one shard (``job``: the runner's keyword arguments, ``backends`` and ``shard`` included) and yield
    messages: ``started`` (pid, host, node), ``meta`` (run.json), ``events`` (raw JSON lines),
    ``output`` (a WAV's path in the run folder and its bytes) and ``finished`` (the runner's exception, if any,
    is raised after everything measured has been sent).

    ``prior_meta`` / ``prior_events``: the shard so far (from a worker that died, or a resumed run): written into
    the temporary folder first, and the runner resumes it.
    """
    from ..runner import run_benchmark

    yield {"kind": "started", **_worker_identity()}
    folder = Path(tempfile.mkdtemp(prefix="s2s-bench-shard-"))
    try:
        events_path, meta_path = folder / "events.jsonl", folder / "run.json"
        offset = 0
        if prior_meta is not None:
            meta_path.write_text(json.dumps(prior_meta, ensure_ascii=False), encoding="utf-8")
            events_path.write_bytes(prior_events or b"")
            offset = len(prior_events or b"")
        failure: list[BaseException] = []
        resume = prior_meta is not None
        kwargs = {**job, "out": folder, "resume": resume, "progress": False}
        if not resume:
            kwargs["retry_failed"] = False  # nothing to retry in a fresh shard

        def measure() -> None:
            try:
                run_benchmark(**kwargs)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the generator, after the last events
                failure.append(exc)

        thread = threading.Thread(target=measure, name="shard-runner", daemon=True)
        thread.start()
        meta_mtime = None
        while True:
            alive = thread.is_alive()
            offset, messages = _tail(folder, events_path, offset)
            for message in messages:  # noqa: UP028 - not `yield from`: Ray drives the generator with send()
                yield message
            if meta_path.exists():
                mtime = meta_path.stat().st_mtime_ns
                if mtime != meta_mtime:
                    meta_mtime = mtime
                    try:
                        yield {"kind": "meta", "meta": json.loads(meta_path.read_text(encoding="utf-8"))}
                    except ValueError:  # caught between the temporary file and its rename: next round
                        meta_mtime = None
            if not alive:
                break
            time.sleep(TAIL_S)
        if failure:
            raise failure[0]
        yield {"kind": "finished"}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _tail(folder: Path, events_path: Path, offset: int) -> tuple[int, list[dict]]:
    """New complete lines of the event log from ``offset``, each utterance's WAV sent before its ``utt_end``."""
    if not events_path.exists():
        return offset, []
    with open(events_path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n")
    if end < 0:
        return offset, []
    chunk = data[: end + 1]
    messages: list[dict] = []
    lines: list[str] = []
    from ..results import slug

    for raw in chunk.splitlines():
        text = raw.decode("utf-8", errors="replace")
        try:
            ev = json.loads(text)
        except ValueError:
            ev = None
        if isinstance(ev, dict) and ev.get("e") == "utt_end":
            wav = folder / "outputs" / slug(ev["b"]) / f"{ev['u']}.wav"
            if lines:
                messages.append({"kind": "events", "lines": lines})
                lines = []
            if wav.exists():
                messages.append(
                    {"kind": "output", "path": str(wav.relative_to(folder)), "data": wav.read_bytes()}
                )
        lines.append(text)
    if lines:
        messages.append({"kind": "events", "lines": lines})
    return offset + len(chunk), messages


def score_shard(
    run_dir: str, metrics: list[str], judge: str | None, target: str, workers: int, ids: list[str]
) -> dict:
    """Score the utterances ``ids`` of a run folder (readable from this worker) and return the results."""
    from ..metrics.scoring import score_utterances

    return {"worker": _worker_identity(), **score_utterances(run_dir, metrics, judge, target, workers, ids)}
