"""Checkpoints with megatron-core dist_checkpointing: model + optimizer + scheduler + data position.

Layout: <dir>/iter_0000042/ (torch_dist format, reshardable across TP/PP) and <dir>/latest (the step,
written last, atomically). A checkpoint without `latest` pointing at it is never read.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch


def step_dir(root: str | Path, step: int) -> Path:
    return Path(root) / f"iter_{step:07d}"


def latest_step(root: str | Path) -> int | None:
    marker = Path(root) / "latest"
    if not marker.is_file():
        return None
    return int(marker.read_text().strip())


def save(root: str | Path, step: int, model, optimizer, scheduler, extra: dict) -> Path:
    from megatron.core import dist_checkpointing

    target = step_dir(root, step)
    if torch.distributed.get_rank() == 0:
        target.mkdir(parents=True, exist_ok=True)
    torch.distributed.barrier()
    model_sd = model.sharded_state_dict()
    state = {"model": model_sd, "optimizer": optimizer.sharded_state_dict(model_sd),
             "scheduler": scheduler.state_dict(), "step": step, "extra": extra}
    dist_checkpointing.save(state, str(target))
    torch.distributed.barrier()
    if torch.distributed.get_rank() == 0:
        tmp = Path(root) / f".latest.{os.getpid()}"
        tmp.write_text(str(step))
        os.replace(tmp, Path(root) / "latest")
    torch.distributed.barrier()
    return target


def load(path: str | Path, model, optimizer=None, scheduler=None) -> dict:
    """Load model (and optimizer/scheduler when given) from one checkpoint directory; returns common state."""
    from megatron.core import dist_checkpointing

    model_sd = model.sharded_state_dict()
    request = {"model": model_sd}
    if optimizer is not None:
        request["optimizer"] = optimizer.sharded_state_dict(model_sd, is_loading=True)
    state = dist_checkpointing.load(request, str(path))
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and "scheduler" in state:
        scheduler.load_state_dict(state["scheduler"])
    return {k: state.get(k) for k in ("step", "extra")}
