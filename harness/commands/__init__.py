"""Sub-commands of ``s2s-bench``. Each module defines ``add_parser(subparsers)``; keep their imports light."""

COMMAND_MODULES = (
    "harness.commands.backends_cmd",
    "harness.commands.run_cmd",
)
