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
