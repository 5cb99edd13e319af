"""Run several training jobs in one ``torchrun`` launch (for the distributed tests): one process group for all.

    torchrun --nproc_per_node 2 tests/distributed_driver.py SPEC.json

``SPEC.json``: ``{"pid_dir": DIR, "jobs": [{"module": "custom_model.train_codec", "argv": [...]}, ...]}``. Each rank
writes its PID to ``DIR/rank{R}.pid`` (so a test can signal one rank) and runs the jobs in order; a launch costs
seconds of start-up on a small machine, a tiny job a fraction of that.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    pid_dir = Path(spec["pid_dir"])
    pid_dir.mkdir(parents=True, exist_ok=True)
    (pid_dir / f"rank{dist.get_rank()}.pid").write_text(str(os.getpid()))
    for job in spec["jobs"]:
        importlib.import_module(job["module"]).main(job["argv"])
        dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
