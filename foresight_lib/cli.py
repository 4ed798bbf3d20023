"""Shared entry-point plumbing for ``stages/*.py``: argument parsing and one-line errors."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable, Sequence

from .errors import ForesightError
from .store import sweep_partials

GATES = ("validate", "validate_data")
"""The stages that only check (their output is a stamp): a failure there removed nothing worth restoring."""

MEMORY_KEYS = {
    "frames": "data.max_clips or the frame geometry (data.height, data.width, data.n_frames)",
    "extract": "extract.batch_frames",
    "probe": "probe.batch_size, probe.gpu_memory_gb or probe.host_memory_gb",
    "latents": "ltx.batch_clips",
    "decode": "ltx.batch_clips",
    "train": "adapter.train.batch_size, adapter.train.gpu_memory_gb or adapter.train.host_memory_gb",
    "recon": "eval.bootstrap_map",
    "report": "probe.bootstrap",
}
"""Per kind of stage, the params keys that bound its memory: the remedy an out-of-memory error names."""


def stage_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--params`` option every stage takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return parser


def stage_name() -> str:
    """The DVC stage being run (``extract@vit_l7``, from DVC's ``DVC_STAGE``), else the entry module's name."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    module = spec.name.rsplit(".", 1)[-1] if spec is not None else os.path.basename(sys.argv[0]).removesuffix(".py")
    return os.environ.get("DVC_STAGE") or module


def resource_error(err: BaseException, stage: str) -> str | None:
    """One line naming ``stage``, what ran out and the remedy, for out of disk, out of memory or a failing GPU;
    ``None`` for any other error (it keeps its traceback)."""
    kind = stage.split("@")[0].removeprefix("stages.")
    keys = next((v for k, v in MEMORY_KEYS.items() if kind.startswith(k)), "the batch sizes in params.yaml")
    cause: BaseException | None = err
    while cause is not None:  # the error itself or what it was raised from (e.g. a writer thread's OSError)
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" writing {cause.filename}" if cause.filename else ""
            return (
                f"{stage}: out of disk space{where}; free space there (or move the DVC cache: dvc cache dir) and "
                "rerun dvc repro: finished clips are kept"
            )
        if type(cause).__name__ == "OutOfMemoryError" or isinstance(cause, MemoryError):
            device = "GPU" if type(cause).__name__ == "OutOfMemoryError" else "host"
            return f"{stage}: out of {device} memory; lower {keys} and rerun dvc repro"
        text = str(cause)
        if isinstance(cause, RuntimeError) and ("CUDA error" in text or "NVIDIA driver" in text):
            first = text.strip().splitlines()[0] if text.strip() else type(cause).__name__
            return (
                f"{stage}: the GPU failed ({first}); check it with nvidia-smi, or run on the CPU "
                "(model.device, probe.device, ltx.device, adapter.train.device: cpu)"
            )
        cause = cause.__cause__ or cause.__context__
    return None


def _restore_hint(stage: str) -> str:
    """What a failed DVC stage tells the user about the outputs DVC removed before running it."""
    if not os.environ.get("DVC_STAGE") or stage in GATES:
        return ""
    return f" (DVC removed the stage's previous outputs before it ran: `dvc checkout {stage}` restores them)"


def run(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Run a stage's ``main``; a :class:`ForesightError`, or running out of disk, memory or GPU, becomes one line
    on stderr (naming the stage and, under DVC, how to restore the outputs it removed) and exit code 2.

    First removes the partial stores that a killed run left beside outputs DVC then restored from its cache
    (:func:`~.store.sweep_partials`; stages run at the repository root). Of the processes of a torchrun launch
    only rank 0 does, before it prepares its own partial store: another rank might sweep that one away."""
    if os.environ.get("RANK", "0") == "0":
        sweep_partials(".")
    stage = stage_name()
    try:
        main(argv)
    except ForesightError as err:
        print(f"error: {err}{_restore_hint(stage)}", file=sys.stderr)
        raise SystemExit(2) from None
    except (OSError, MemoryError, RuntimeError) as err:
        line = resource_error(err, stage)
        if line is None:
            raise
        print(f"error: {line}{_restore_hint(stage)}", file=sys.stderr)
        raise SystemExit(2) from None
