"""DDP under ``torchrun``: process-group set-up from the environment and the self re-launch."""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist


def under_torchrun() -> bool:
    """True inside a process started by torchrun (``LOCAL_RANK`` and ``WORLD_SIZE`` set)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def relaunch_with_torchrun(nproc: int, argv: list[str], module: str = "ovlab") -> None:
    """Replace this process by ``torchrun --nproc_per_node nproc -m <module> <argv>`` (never returns);
    a failing rank ends it with exit code 1 and the rank's own one-line error, not torchrun's dump.

    Called by ``ovlab train`` (and ``ovlab grid``, ``module="ovlab.experiments.grid"``) when
    ``train.gpus`` > 1 and it is not yet under torchrun, so the DVC stage command stays
    ``python -m ovlab train --section S``.
    """
    cmd = [sys.executable, "-m", "ovlab.engine.distributed", "--standalone", f"--nproc_per_node={nproc}",
           "-m", module, *argv]
    os.execv(sys.executable, cmd)


if __name__ == "__main__":  # torchrun, without its traceback dump when a rank fails (rank 0 printed the error)
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main

    try:
        main(sys.argv[1:])
    except ChildFailedError:
        sys.exit(1)


def setup(device: str) -> tuple[int, int, torch.device]:
    """Initialise the process group when under torchrun; return (rank, world_size, device).

    ``device``: ``cpu`` | ``cuda`` | ``auto``. NCCL on CUDA, gloo on CPU.

    Raises:
        RuntimeError: ``cuda`` asked for but not available.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("base.device is 'cuda' but torch sees no GPU (set it to cpu or auto)")
    if not under_torchrun():
        return 0, 1, torch.device(device)
    local = int(os.environ["LOCAL_RANK"])
    if device == "cuda":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    dev = torch.device(f"cuda:{local}") if device == "cuda" else torch.device("cpu")
    return dist.get_rank(), dist.get_world_size(), dev


def cleanup() -> None:
    """Destroy the process group if one is up."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
