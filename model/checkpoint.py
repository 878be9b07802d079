"""Checkpoints with megatron-core dist_checkpointing: model + optimizer + scheduler + data position + RNG state.

RNG state (Python, NumPy, torch CPU and CUDA, megatron's model-parallel RNG tracker that drives dropout) is saved
per rank as a ShardedObject indexed by (pipeline, tensor, data) rank, as Megatron-LM does; it is restored when
the layout is unchanged and re-seeded from (seed, step) when a checkpoint is loaded into a different layout.

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


def _layout() -> list[int]:
    from megatron.core import parallel_state as ps

    return [ps.get_pipeline_model_parallel_world_size(), ps.get_tensor_model_parallel_world_size(),
            ps.get_data_parallel_world_size()]


def _rng_object(state: dict | None = None):
    """This rank's RNG state as a ShardedObject (current state, or a template to load into)."""
    import random

    import numpy as np
    from megatron.core import parallel_state as ps, tensor_parallel
    from megatron.core.dist_checkpointing.mapping import ShardedObject

    if state is None:
        state = {"random": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                 "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
                 "tracker": tensor_parallel.get_cuda_rng_tracker().get_states()}
    rank = (ps.get_pipeline_model_parallel_rank(), ps.get_tensor_model_parallel_rank(), ps.get_data_parallel_rank())
    return ShardedObject("rng_state", state, tuple(_layout()), rank, replica_id=0)


def _restore_rng(state: dict) -> None:
    import random

    import numpy as np
    from megatron.core import tensor_parallel

    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    tensor_parallel.get_cuda_rng_tracker().set_states(state["tracker"])


def save(root: str | Path, step: int, model, optimizer, scheduler, extra: dict) -> Path:
    from megatron.core import dist_checkpointing

    target = step_dir(root, step)
    if torch.distributed.get_rank() == 0:
        target.mkdir(parents=True, exist_ok=True)
    torch.distributed.barrier()
    model_sd = model.sharded_state_dict()
    state = {"model": model_sd, "optimizer": optimizer.sharded_state_dict(model_sd),
             "scheduler": scheduler.state_dict(), "step": step, "extra": extra, "layout": _layout(),
             "rng_state": _rng_object()}
    dist_checkpointing.save(state, str(target))
    torch.distributed.barrier()
    if torch.distributed.get_rank() == 0:
        tmp = Path(root) / f".latest.{os.getpid()}"
        tmp.write_text(str(step))
        os.replace(tmp, Path(root) / "latest")
    torch.distributed.barrier()
    return target


def load(path: str | Path, model, optimizer=None, scheduler=None, rng: bool = False) -> dict:
    """Load model (and optimizer/scheduler when given) from one checkpoint directory; returns common state.
    With `rng`, restores every RNG of this rank if the checkpoint has the same (PP, TP, DP) layout;
    `rng_restored` in the result says whether it did."""
    from megatron.core import dist_checkpointing

    model_sd = model.sharded_state_dict()
    request = {"model": model_sd}
    if optimizer is not None:
        request["optimizer"] = optimizer.sharded_state_dict(model_sd, is_loading=True)
    common = dist_checkpointing.load_common_state_dict(str(path))
    with_rng = rng and common.get("layout") == _layout()
    if with_rng:
        request["rng_state"] = _rng_object()
    state = dist_checkpointing.load(request, str(path))
    if with_rng:
        _restore_rng(state["rng_state"])
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and "scheduler" in state:
        scheduler.load_state_dict(state["scheduler"])
    return {"step": state.get("step", common.get("step")), "extra": state.get("extra", common.get("extra")),
            "rng_restored": with_rng}
