"""Data-parallel launches: several processes (GPUs, machines) extract one point into one store, through torchrun.

How many processes run is a launch setting, never a param: params are hashed by DVC, and the store does
not depend on it (each process computes the same fixed batches of clips as a single process would).
``FORESIGHT_TORCHRUN`` holds torchrun's own arguments (``--nproc-per-node 4``; for several machines
``--nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint host0:29500 --rdzv-id <run>``): a stage
started without torchrun's environment restarts itself under ``python -m torch.distributed.run`` with them.
A stage started by torchrun reads the variables torchrun sets: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and
``MASTER_ADDR``/``MASTER_PORT`` for the process group).

Coordination is CPU-side (gloo): a barrier and a gather of small records; no tensor moves between
processes, so there is nothing for NCCL to do, and gloo's long timeout lets a finished process wait for
the slowest without a GPU watchdog. A process that dies is noticed by torchrun, which stops the others.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

TORCHRUN_ENV = "FORESIGHT_TORCHRUN"
WAIT = timedelta(days=7)
"""How long a finished process waits at a barrier for the others (a dead one is torchrun's to notice)."""


@dataclass(frozen=True)
class Launch:
    """This process's place in the launch: rank ``rank`` of ``world`` (a single process: 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def gather(self, record: Any) -> list[Any]:
        """Every process's ``record`` (small, picklable), in rank order, on every process."""
        if self.world == 1:
            return [record]
        records: list[Any] = [None] * self.world
        dist.all_gather_object(records, record)
        return records


ALONE = Launch()
"""A single process, not started by torchrun."""


def relaunch_under_torchrun(argv: Sequence[str]) -> None:
    """Replace this process by torchrun running the same command, when ``FORESIGHT_TORCHRUN`` asks for it.

    Does nothing when the variable is unset or empty, or when this process was started by torchrun. A stage started
    as ``python -m stages.<name>`` is relaunched as a module too (torchrun's ``-m``), so each worker also imports
    this checkout's code.
    """
    args = os.environ.get(TORCHRUN_ENV, "").strip()
    if not args or "RANK" in os.environ:
        return
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    target = ["-m", spec.name, *argv[1:]] if spec is not None else list(argv)
    command = [sys.executable, "-m", "torch.distributed.run", *shlex.split(args), *target]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)


def start() -> Launch:
    """Join the launch that torchrun started (a process group when there are several processes), or run alone.

    On CUDA machines each process takes the GPU of its ``LOCAL_RANK`` as its current device.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return ALONE
    launch = Launch(rank=int(os.environ["RANK"]), world=world, local_rank=int(os.environ["LOCAL_RANK"]))
    if torch.cuda.is_available():
        torch.cuda.set_device(launch.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=WAIT)
    return launch


def stop(launch: Launch) -> None:
    """Leave the process group (after the last collective)."""
    if launch.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
