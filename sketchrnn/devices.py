"""Where a run computes: one device, or one process of a data-parallel group that torchrun started.

Data-parallel: `torchrun --nproc_per_node=N` describes the group in the environment (WORLD_SIZE,
RANK, LOCAL_RANK); each process joins it (NCCL on CUDA, gloo on CPU). In a single process every
helper here is a no-op.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from sketchprep.errors import OptionError
from sketchprep.limits import check_device

from .data import Batch


def resolve_device(device: str) -> torch.device:
    device = check_device(device)   # auto, cpu, cuda, cuda:N or mps: torch's other types cannot run a model
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"--device {device}: CUDA is not available here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise OptionError(f"--device {device}: there are {torch.cuda.device_count()} CUDA device(s), cuda:0.."
                          f"cuda:{torch.cuda.device_count() - 1}")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise OptionError(f"--device {device}: MPS is not available here")
    return dev


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float], device) -> list[float]:
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        return t.tolist()


def init_distributed(device: str) -> tuple[Dist, torch.device]:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1), else one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), resolve_device(device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local_rank), dev


def to_device(batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's stroke-5 array on the device; its lengths stay on the CPU."""
    x = torch.from_numpy(batch.strokes5).to(device, non_blocking=True)
    return x, torch.from_numpy(batch.lengths)
