"""pytest plugin (entry point ``pytest11``): ``pytest suites/ --backend=SPEC``."""

from __future__ import annotations


def pytest_addoption(parser):
    group = parser.getgroup("s2s-bench", "speech-to-speech benchmark")
    group.addoption(
        "--backend",
        action="append",
        default=[],
        metavar="SPEC",
        help="backend to measure, NAME[:key=value,...] (repeatable)",
    )
