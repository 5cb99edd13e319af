"""``s2s-bench``: the command-line interface. Heavy imports happen inside commands, so ``--help`` is instant."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .commands import COMMAND_MODULES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s2s-bench", description="Benchmark streaming speech-to-speech systems on Telugu speech."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code is the command's (``s2s-bench run --help`` lists them).

    When threads are still alive at the end (a timed-out backend call that never returned, a backend's worker
    still inside a torch op), the process ends with ``os._exit`` once the output is flushed: letting the
    interpreter finalise under such a thread aborts the process (``terminate called without an active
    exception``) and replaces the run's exit code with the crash's.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        print("interrupted", file=sys.stderr)
        code = 128 + int(getattr(exc, "signum", 2))
    if argv is None:  # the process's own command line: safe to end the process here
        _exit_past_stray_threads(code)
    return code


def _exit_past_stray_threads(code: int) -> None:
    """``os._exit(code)`` after flushing, if any thread but the main one is still alive; else return."""
    import threading

    main_thread = threading.main_thread()
    if not any(t is not main_thread and t.is_alive() and not _harmless(t) for t in threading.enumerate()):
        return
    import logging
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    logging.shutdown()
    os._exit(code)


def _harmless(thread) -> bool:
    """Threads that never run native code at exit (tqdm's monitor sleeps in Python)."""
    return type(thread).__name__ == "TMonitor"


if __name__ == "__main__":
    sys.exit(main())
