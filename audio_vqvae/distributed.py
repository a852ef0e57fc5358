"""Process-group helpers: set up from torchrun's environment, agree on flags, check replicas agree."""

from __future__ import annotations

import os

import torch
from torch import distributed as td
from torch import nn


def active() -> bool:
    return td.is_available() and td.is_initialized()


def setup() -> tuple[int, int, int]:
    """Join the process group that torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK); (0, 1, 0) alone.

    NCCL when CUDA is available, gloo otherwise (also for multi-process training on CPUs).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 1, 0
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not active():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        td.init_process_group(backend)
    return rank, world_size, local_rank


def teardown() -> None:
    if active():
        td.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (nothing without a process group)."""
    if active():
        td.barrier()


def _device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if td.get_backend() == "nccl" else torch.device("cpu")


def all_ranks_true(flag: torch.Tensor | bool) -> bool:
    """True when ``flag`` holds on every rank (one host sync)."""
    return all_ranks_true_each(flag)[0]


def all_ranks_true_each(*flags: torch.Tensor | bool) -> list[bool]:
    """For each flag, True when it holds on every rank: one all-reduce (MIN), one host sync."""
    if not active():
        return [bool(f) for f in flags]
    t = torch.stack([torch.as_tensor(f, dtype=torch.float32).reshape(()).to(_device()) for f in flags])
    td.all_reduce(t, op=td.ReduceOp.MIN)
    return [bool(v) for v in t.tolist()]


def broadcast_flag(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank."""
    if not active():
        return flag
    t = torch.tensor([float(flag)], device=_device())
    td.broadcast(t, src=0)
    return bool(t.item())


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (in place where a group is active); returns ``t``."""
    if active():
        td.all_reduce(t)
    return t


def broadcast_(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Rank ``src``'s values on every rank (in place where a group is active); returns ``t``."""
    if active():
        td.broadcast(t, src=src)
    return t


def rank() -> int:
    """This process's rank in the group; 0 alone."""
    return td.get_rank() if active() else 0


def world_size() -> int:
    return td.get_world_size() if active() else 1


def shared_state(model: nn.Module) -> list[torch.Tensor]:
    """Parameters and buffers that must be equal on every rank (a module's ``rank_local_buffers`` are not)."""
    local = {
        f"{prefix}.{name}" if prefix else name
        for prefix, module in model.named_modules()
        for name in getattr(module, "rank_local_buffers", ())
    }
    return [p for _, p in model.named_parameters()] + [b for n, b in model.named_buffers() if n not in local]


def parameter_checksum(model: nn.Module) -> torch.Tensor:
    """Two float64 numbers that differ, in practice, whenever any shared parameter or buffer differs."""
    total = torch.zeros(2, dtype=torch.float64)
    for i, t in enumerate(shared_state(model)):
        v = t.detach().double().flatten().cpu()
        total[0] += v.sum()
        total[1] += (v * torch.linspace(1, 2, v.numel(), dtype=torch.float64)).sum() * (i + 1)
    return total


def check_replicas_agree(model: nn.Module) -> None:
    """Raise if the ranks' parameters and buffers (codebook EMA state included) have drifted apart."""
    if not active():
        return
    mine = parameter_checksum(model).to(_device())
    gathered = [torch.empty_like(mine) for _ in range(td.get_world_size())]
    td.all_gather(gathered, mine)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError(f"parameters differ across ranks: {[g.tolist() for g in gathered]}")
