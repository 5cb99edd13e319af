"""Where utterances run: executors.

- ``local`` (the default): this process, :func:`harness.runner.run_benchmark`; with ``--shard I/N`` only that
  shard of the utterances (:mod:`harness.executors.shards`), so that any scheduler (a SLURM array, a Kubernetes
  indexed Job) can run the N shards and ``s2s-bench merge`` (:mod:`harness.executors.merge`) joins them.
- ``ray[:ADDRESS]``: shards sent to a Ray cluster as tasks, one loaded backend per worker, events streamed back as
  they happen, a dead worker's shard resumed elsewhere, ending in the same merged run
  (:mod:`harness.executors.ray_executor`; needs the ``ray`` extra, imported only when used).

This module only parses the choice: it imports nothing heavy, so ``s2s-bench --help`` stays instant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

EXECUTORS = ("local", "ray")
RAY_EXTRA = "pip install 's2s-bench[ray]'"
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?$", re.IGNORECASE)
_RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory")


@dataclass(frozen=True)
class ExecutorSpec:
    """``local``, ``ray`` (a new local Ray, or the cluster ``RAY_ADDRESS`` names) or ``ray:ADDRESS``."""

    kind: str = "local"
    address: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> ExecutorSpec:
        text = (text or "local").strip()
        kind, _, address = text.partition(":")
        if kind not in EXECUTORS:
            raise ValueError(
                f"Expected --executor to be local, ray or ray:ADDRESS (e.g. ray:auto, ray:10.0.0.5:6379, "
                f"ray://head:10001) but got {text!r}"
            )
        if kind == "local" and address:
            raise ValueError(f"--executor local takes no address but got {text!r}")
        return cls(kind, address or None)

    def __str__(self) -> str:
        return self.kind + (f":{self.address}" if self.address else "")


@dataclass
class RayOptions:
    """How the Ray executor spreads the work: ``shards`` per backend (None: as many as the cluster fits),
    ``resources`` per backend name or key (Ray task options: ``num_cpus``, ``num_gpus``, ``memory`` in bytes, and
    custom resources), ``retries``: how many times a shard whose worker died is resumed on another worker."""

    address: str | None = None
    shards: int | None = None
    resources: dict[str, dict] = field(default_factory=dict)
    retries: int = 3

    def resources_for(self, key: str, name: str) -> dict:
        """The Ray task options of backend ``key`` (its own entry, else its name's, else one CPU)."""
        return dict(self.resources.get(key) or self.resources.get(name) or {"num_cpus": 1})


def parse_size(text: str) -> int:
    """``4G``, ``512MiB``, ``1000000`` -> bytes."""
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise ValueError(f"Expected a memory size such as 4G or 512M but got {text!r}")
    unit = (m[2] or "B").upper().rstrip("B").rstrip("I") or "B"
    scale = {"B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[unit]
    return int(float(m[1]) * scale)


def parse_resources(specs: list[str] | None) -> dict[str, dict]:
    """``--ray-resources BACKEND:num_gpus=1,num_cpus=4,memory=16G,my_resource=1`` (repeatable) as
    ``{BACKEND: task options}``; BACKEND is a backend name (``custom``) or a full key."""
    out: dict[str, dict] = {}
    for spec in specs or []:
        backend, sep, opts = spec.rpartition(":")
        if not sep or not backend or not opts:
            raise ValueError(
                f"Expected --ray-resources BACKEND:KEY=VALUE,... (e.g. custom:num_gpus=1,num_cpus=4) but got {spec!r}"
            )
        task: dict = {}
        custom: dict[str, float] = {}
        for item in opts.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key:
                raise ValueError(f"--ray-resources {spec!r}: expected KEY=VALUE but got {item!r}")
            try:
                if key == "memory":
                    task[key] = parse_size(value)
                elif key in _RESOURCE_KEYS:
                    task[key] = float(value)
                else:
                    custom[key] = float(value)
            except ValueError as exc:
                raise ValueError(
                    f"--ray-resources {spec!r}: {key}={value!r} is not a number ({exc})"
                ) from None
            if key != "memory" and (task.get(key, custom.get(key, 0)) < 0):
                raise ValueError(f"--ray-resources {spec!r}: {key} must be >= 0")
        if custom:
            task["resources"] = custom
        task.setdefault("num_cpus", 1)
        out[backend] = task
    return out
