"""Serve a backend from a given source tree, out of process: ``s2s-bench serve`` run from that tree's own code.

Two versions of one Python package cannot live in one process, so each side of a side-by-side gate serves its
backend in its own process on 127.0.0.1: the same interpreter and virtual environment, with the tree first on
``sys.path`` (and ``PYTHONPATH``, ``cwd``). A bootstrap checks that ``harness`` and ``backends`` really were imported
from that tree (an editable install of another checkout must not answer instead) before it calls the tree's own
``harness.cli.main(["serve", ...])``. The server's output goes to a log file; a server that exits, never answers
``/health`` or speaks another protocol raises :class:`ServeError` with the end of its log.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

LOCALHOST = "127.0.0.1"

BOOTSTRAP = """
import os, sys
tree = os.path.realpath(sys.argv[1])
sys.path.insert(0, tree)
for name in ("harness", "backends", "custom_model"):
    if not os.path.isdir(os.path.join(tree, name)):
        continue
    mod = __import__(name)
    where = os.path.realpath(os.path.dirname(mod.__file__))
    if not where.startswith(tree + os.sep):
        sys.exit(f"tree_server: {name} was imported from {where}, not from the tree {tree}")
print(f"tree_server: serving from {tree}", file=sys.stderr, flush=True)
from harness.cli import main
sys.exit(main(sys.argv[2:]))
"""


class ServeError(RuntimeError):
    """A tree's server did not come up (or went away); the message names the tree, the spec and the log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:]) or "    (empty log)"


class TreeServer:
    """``s2s-bench serve --backend SPEC`` from ``tree``, on a free port of 127.0.0.1, logging to ``log``.

    ``tree=None``: the installed harness this process runs (``python -m harness.cli serve``), from the current
    folder; the load suite serves each backend this way. ``serve_args``: more options of ``s2s-bench serve``.
    """

    def __init__(
        self,
        tree: str | Path | None,
        spec: str,
        log: str | Path,
        label: str,
        extra_env: dict | None = None,
        serve_args: tuple[str, ...] = (),
    ):
        self.tree = None if tree is None else Path(tree).resolve()
        self.serve_args = tuple(serve_args)
        self.spec = spec  # revealed: the server needs any secret the spec holds; never printed (label is)
        self.log = Path(log)
        self.label = label
        self.extra_env = dict(extra_env or {})
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.health: dict = {}
        self.load_s: float | None = None

    @property
    def url(self) -> str:
        return f"ws://{LOCALHOST}:{self.port}/ws"

    def _env(self) -> dict:
        env = dict(os.environ)
        if self.tree is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(self.tree), *filter(None, [env.get("PYTHONPATH")])])
        env.update(self.extra_env)
        return env

    def start(self, timeout_s: float = 600.0) -> TreeServer:
        """Start the server and wait until ``/health`` answers (the backend is loaded and warmed up by then)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        if self.tree is None:
            argv = [sys.executable, "-m", "harness.cli", "serve", "--backend", self.spec]
        else:
            argv = [sys.executable, "-c", BOOTSTRAP, str(self.tree), "serve", "--backend", self.spec]
        argv += ["--host", LOCALHOST, "--port", str(self.port), "--log-level", "warning", *self.serve_args]
        t0 = time.monotonic()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.tree or os.getcwd(),
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        health = f"http://{LOCALHOST}:{self.port}/health"
        while True:
            code = self.proc.poll()
            if code is not None:
                raise ServeError(
                    f"{self.label}: the server exited with code {code} before it answered {health}; "
                    f"the end of its log ({self.log}):\n{log_tail(self.log)}"
                )
            try:
                with urllib.request.urlopen(health, timeout=2.0) as resp:
                    self.health = json.loads(resp.read().decode())
                break
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() - t0 > timeout_s:
                self.stop()
                raise ServeError(
                    f"{self.label}: no answer from {health} within {timeout_s:g} s (loading the backend, or hung); "
                    f"the end of its log ({self.log}):\n{log_tail(self.log)}"
                )
            time.sleep(0.2)
        self.load_s = round(time.monotonic() - t0, 1)
        return self

    def check_protocol(self, expected: str) -> None:
        served = self.health.get("protocol")
        if served != expected:
            raise ServeError(
                f"{self.label}: its server speaks {served!r} but this harness speaks {expected!r}: the two sides "
                "cannot be measured through the same client (the protocol changed between the revisions)"
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM (uvicorn shuts down, the backend is released), SIGKILL after ``timeout_s``; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
        return self.proc.returncode

    def describe(self) -> dict:
        """How this side was run, for the gate's report and the split run's ``run.json``."""
        where = f"from {self.tree}" if self.tree is not None else "(this install) in its own process"
        return {
            "tree": None if self.tree is None else str(self.tree),
            "served_by": f"s2s-bench serve {where} on {self.url} (python {sys.executable})",
            "url": self.url,
            "log": str(self.log),
            "load_s": self.load_s,
            "protocol": self.health.get("protocol"),
            "backend": self.health.get("backend"),
        }
