"""What a training checkpoint holds, as tensors plus JSON, and how a trainer is put back into it.

    tensors   model/<name>, optim/<param index>/<key>, rng/torch[/<rank>], rng/cuda[/<rank>],
              rng/data, data/order (the current epoch's permutation, mid-epoch)
    meta      the run's meta (config, data_info, versions ...), then step, epoch, batch_in_epoch,
              world_size, elbo_sum, elbo_count, seconds, metrics, rollbacks, optimizer_groups

Every random stream is saved (each rank's global one for posterior draws and dropout, the data
generator for shuffling and preprocessing noise), so a resumed run ends where an unbroken one does.
"""

from __future__ import annotations

import json

import torch

from aevb.runtime import distributed


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under `prefix/`, with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + "/")}


def capture(trainer) -> tuple[dict[str, torch.Tensor], dict]:
    """Everything a resumed run needs from a `Trainer`, as tensors plus JSON (sharing its tensors)."""
    tensors = {f"model/{k}": v for k, v in trainer.model.state_dict().items()}
    opt = trainer.steps.optimizer.state_dict()
    for i, s in opt["state"].items():
        tensors.update({f"optim/{i}/{k}": v for k, v in s.items()})
    # each rank's global stream: rank 0's under rng/torch, rank r's under rng/torch/r
    streams = {"rng/torch": torch.get_rng_state()}
    if trainer.device.type == "cuda":
        streams["rng/cuda"] = torch.cuda.get_rng_state(trainer.device)
    for key, state in streams.items():
        for r, s in enumerate(distributed.gather_states(state)):
            tensors[key if r == 0 else f"{key}/{r}"] = s
    tensors["rng/data"] = trainer.gen.get_state()  # the same on every rank
    if trainer.order is not None:
        tensors["data/order"] = trainer.order
    elbo_sum, elbo_count = trainer.epoch_elbo()
    meta = {
        **trainer.meta,
        "step": trainer.step,
        "epoch": trainer.epoch,
        "batch_in_epoch": trainer.batch_in_epoch,
        "world_size": trainer.world,
        "elbo_sum": elbo_sum,
        "elbo_count": elbo_count,
        "seconds": trainer.seconds,
        "metrics": trainer.metrics,
        "rollbacks": trainer.rollbacks,
        "optimizer_groups": [{**g, "lr": float(g["lr"])} for g in opt["param_groups"]],
    }
    return tensors, meta


def snapshot(tensors: dict[str, torch.Tensor], meta: dict) -> tuple[dict, dict]:
    """A copy of a captured state that later steps cannot change."""
    return {k: v.detach().clone() for k, v in tensors.items()}, json.loads(json.dumps(meta))


def restore(trainer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Put a `Trainer` (its model's tensors already loaded) back where `capture` left one."""
    step = trainer.steps
    states = {}
    for key, v in prefixed(tensors, "optim").items():
        i, name = key.split("/", 1)
        states.setdefault(int(i), {})[name] = v.to(trainer.device) if name != "step" else v
    # capturable is this device's choice, not the saved run's (a CPU run may resume on a GPU)
    groups = [{**g, "capturable": step.optimizer.defaults["capturable"]} for g in meta["optimizer_groups"]]
    step.optimizer.load_state_dict({"state": states, "param_groups": groups})
    step.set_lr(trainer.cfg.lr)  # a resumed run may not change the learning rate silently
    step.reset()  # the optimizer's tensors are new
    suffix = "" if trainer.rank == 0 else f"/{trainer.rank}"
    if f"rng/torch{suffix}" in tensors:
        torch.set_rng_state(tensors[f"rng/torch{suffix}"])
    else:  # a run resumed on more processes than it had: this rank starts a fresh stream
        torch.manual_seed(distributed.rank_seed(trainer.cfg.seed) + meta["step"])
    if f"rng/cuda{suffix}" in tensors and trainer.device.type == "cuda":
        torch.cuda.set_rng_state(tensors[f"rng/cuda{suffix}"], trainer.device)
    trainer.gen.set_state(tensors["rng/data"])
    order = tensors.get("data/order")
    trainer.order = None if order is None else order.to(trainer.gen.device)
    trainer.step, trainer.epoch = meta["step"], meta["epoch"]
    trainer.batch_in_epoch = meta["batch_in_epoch"]
    # the epoch's running sums over every rank, held by rank 0 (the others count from zero)
    trainer.elbo_sum.fill_(meta["elbo_sum"] if trainer.rank == 0 else 0.0)
    trainer.elbo_count = meta["elbo_count"] if trainer.rank == 0 else 0
    trainer.seconds, trainer.metrics = meta["seconds"], list(meta["metrics"])
    trainer.rollbacks = list(meta.get("rollbacks", []))
    trainer.monitor.clear()
