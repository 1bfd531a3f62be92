"""Training on several processes under `torchrun`, with PyTorch's own process group and DDP.

`torchrun --nproc-per-node N -m aevb train ...` starts N ranks. Each takes a contiguous shard of
every global batch (`--batch-size` is the global batch), DistributedDataParallel averages the
gradients, and only rank 0 writes files. Evaluation splits the batches of a split round-robin over
the ranks and gathers the per-datapoint values back in order, so every rank's metrics cover the
whole split. Without torchrun's environment everything here is the identity: one rank of one.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from aevb.errors import AevbError


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher) as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> torch.device:
    """Join torchrun's process group (gloo on CPU, NCCL on CUDA); returns this rank's device."""
    if not launched():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise AevbError(f"training on several processes needs --device cpu or cuda, not {device.type}")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def finish() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def rank_seed(seed: int) -> int:
    """The seed of this rank's own random stream: the run's seed on rank 0."""
    return seed + 1_000_003 * rank()


def is_main() -> bool:
    """Rank 0, the one process that writes checkpoints, metrics and figures."""
    return rank() == 0


def shard(n: int) -> slice:
    """This rank's contiguous rows of a global batch of n: sizes differ by at most one."""
    w, r = world(), rank()
    return slice(r * n // w, (r + 1) * n // w)


def _device() -> torch.device:
    """Where collectives run: NCCL takes CUDA tensors only, gloo takes CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """The elementwise sum of `t` over the ranks (a new tensor; `t` is unchanged)."""
    if world() == 1:
        return t.clone()
    out = t.to(_device(), copy=True)
    dist.all_reduce(out)
    return out.to(t.device)


def any_rank(flags: torch.Tensor) -> list[bool]:
    """Each flag of a bool vector, true if it is true on any rank (one collective, one sync)."""
    return (all_sum(flags.to(torch.int32)) > 0).tolist()


def gather_batches(mine: list[torch.Tensor], sizes: list[int], tail: tuple[int, ...] = (),
                   like: torch.Tensor | None = None) -> torch.Tensor:
    """All batches' rows in order, on every rank, when rank r holds batches r, r + W, ...

    `sizes` are the row counts of every batch; `tail` the shape of a row; `like` gives the dtype
    and device of a rank that holds no batch.
    """
    w, r = world(), rank()
    if w == 1:
        return torch.cat(mine)
    rows = [sum(sizes[q::w]) for q in range(w)]  # rows each rank holds
    local = torch.cat(mine) if mine else torch.empty((0, *tail), dtype=like.dtype, device=like.device)
    padded = local.new_zeros((max(rows), *tail))
    padded[: rows[r]] = local
    parts = [torch.empty_like(padded) for _ in range(w)]
    dist.all_gather(parts, padded)
    per_rank = [list(parts[q][: rows[q]].split(sizes[q::w])) for q in range(w)]
    return torch.cat([per_rank[i % w][i // w] for i in range(len(sizes))])


def gather_states(state: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's copy of a same-shaped tensor (a random generator's state), in rank order."""
    if world() == 1:
        return [state]
    parts = [torch.empty_like(state, device=_device()) for _ in range(world())]
    dist.all_gather(parts, state.to(_device()))
    return [p.to(state.device) for p in parts]
