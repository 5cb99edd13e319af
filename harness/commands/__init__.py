"""Sub-commands of ``s2s-bench``. Each module defines ``add_parser(subparsers)``; keep their imports light."""

COMMAND_MODULES = (
    "harness.commands.backends_cmd",
    "harness.commands.run_cmd",
    "harness.commands.merge_cmd",
    "harness.commands.data_cmd",
    "harness.commands.score_cmd",
    "harness.commands.report_cmd",
    "harness.commands.history_cmd",
    "harness.commands.gate_cmd",
    "harness.commands.serve_cmd",
)


DEFAULT_REVISION = "no REV: the merge base with main, or the previous commit when HEAD is main"
"""What ``--against`` without a value means (``harness.revision.resolve``)."""


def add_against_argument(parser, what: str) -> None:
    """``--against [REV]`` (``None`` when absent, ``""`` for the default revision); ``what``: the help's start."""
    parser.add_argument(
        "--against",
        nargs="?",
        const="",
        default=None,
        metavar="REV",
        help=f"{what} ({DEFAULT_REVISION})",
    )
