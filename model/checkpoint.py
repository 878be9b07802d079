"""Checkpoints with megatron-core dist_checkpointing: model + optimizer + scheduler + data position + RNG state.

RNG state (Python, NumPy, torch CPU and CUDA, megatron's model-parallel RNG tracker that drives dropout) is saved
per rank as a ShardedObject indexed by (pipeline, tensor, data) rank, as Megatron-LM does; it is restored when
the layout is unchanged and re-seeded from (seed, step) when a checkpoint is loaded into a different layout.

megatron-core's DistributedOptimizer (ZeRO-1) is supported with the repairs its torch-Adam fallback needs
(Adam `step` saved and restored per parameter, state primed before loading, loads under no_grad).

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


# Distributed-optimizer state is saved in megatron-core's dp_reshardable format: fully parallel, reloadable under
# another data-parallel size. (Its fully_reshardable format does not load without Apex/TE in megatron-core 0.16.1.)
OPTIMIZER_METADATA = {"distrib_optim_sharding_type": "dp_reshardable"}


def save(root: str | Path, step: int, model, optimizer, scheduler, extra: dict) -> Path:
    from megatron.core import dist_checkpointing

    target = step_dir(root, step)
    if torch.distributed.get_rank() == 0:
        target.mkdir(parents=True, exist_ok=True)
    torch.distributed.barrier()
    model_sd = model.sharded_state_dict()
    state = {"model": model_sd, "optimizer": optimizer.sharded_state_dict(model_sd, metadata=OPTIMIZER_METADATA),
             "scheduler": scheduler.state_dict(), "step": step, "extra": extra, "layout": _layout(),
             "rng_state": _rng_object(), "adam_step": _adam_step(optimizer),
             "optimizer_format": "distributed" if _distributed_adams(optimizer) else "plain"}
    dist_checkpointing.save(state, str(target))
    torch.distributed.barrier()
    if torch.distributed.get_rank() == 0:
        tmp = Path(root) / f".latest.{os.getpid()}"
        tmp.write_text(str(step))
        os.replace(tmp, Path(root) / "latest")
    torch.distributed.barrier()
    return target


def _prime_distributed_optimizer(optimizer) -> None:
    """Without Apex/TE, megatron-core's DistributedOptimizer reads each parameter's Adam `step` to build the state
    dict it loads into, and a fresh optimizer has none. Give it zero state (replaced by the load)."""
    if not _torch_adam_fallback():
        return
    for adam in _distributed_adams(optimizer):
        for group in adam.param_groups:
            for p in group["params"]:
                if not adam.state[p]:
                    adam.state[p] = {"step": torch.zeros((), dtype=torch.float32),
                                     "exp_avg": torch.zeros_like(p.data), "exp_avg_sq": torch.zeros_like(p.data)}


def _distributed_adams(optimizer) -> list:
    """The torch Adam instances inside megatron-core DistributedOptimizers (none for the plain optimizer)."""
    from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer

    return [opt.optimizer for opt in getattr(optimizer, "chained_optimizers", [optimizer])
            if isinstance(opt, DistributedOptimizer)]


def _torch_adam_fallback() -> bool:
    """megatron-core runs torch's Adam (the path the repairs below are for) when neither Apex nor TE is present."""
    from megatron.core.optimizer import distrib_optimizer

    return not distrib_optimizer.HAVE_APEX_OR_TE


def _adam_step(optimizer) -> float | None:
    steps = {float(st["step"]) for adam in _distributed_adams(optimizer) for st in adam.state.values() if "step" in st}
    return max(steps) if steps else None


def _restore_adam_steps(optimizer, step: float | None) -> None:
    """Without Apex/TE, megatron-core's DistributedOptimizer does not bring each parameter's Adam `step` back
    (it comes back as the loading template's, and as one tensor shared by every parameter, which torch's Adam
    would advance once per parameter). Set each parameter's own step from the value saved with the checkpoint."""
    if step is None or not _torch_adam_fallback():
        return
    for adam in _distributed_adams(optimizer):
        for st in adam.state.values():
            st["step"] = torch.tensor(step, dtype=torch.float32)


def _check_optimizer_format(path, common: dict, optimizer) -> None:
    """Distributed-optimizer state (megatron-core's dp_reshardable format) reloads under another data-parallel
    size, not under another TP/PP layout nor into the plain optimizer (and the reverse): say so with the fix."""
    want = "distributed" if _distributed_adams(optimizer) else "plain"
    have = common.get("optimizer_format", "plain")
    if have != want:
        raise ValueError(f"checkpoint {path} holds {have}-optimizer state but this run uses the {want} optimizer: "
                         f"set distributed_optimizer = {str(have == 'distributed').lower()} to resume it")
    saved = common.get("layout")
    if want == "distributed" and saved and saved[:2] != _layout()[:2]:
        raise ValueError(f"checkpoint {path} holds distributed-optimizer state for pipeline_parallel={saved[0]} "
                         f"tensor_parallel={saved[1]}; it resumes under another data-parallel size but not another "
                         f"TP/PP layout: resume with those degrees (checkpoints saved with distributed_optimizer = false "
                         f"reshard freely)")


def load(path: str | Path, model, optimizer=None, scheduler=None, rng: bool = False) -> dict:
    """Load model (and optimizer/scheduler when given) from one checkpoint directory; returns common state.
    With `rng`, restores every RNG of this rank if the checkpoint has the same (PP, TP, DP) layout;
    `rng_restored` in the result says whether it did."""
    from megatron.core import dist_checkpointing

    model_sd = model.sharded_state_dict()
    request = {"model": model_sd}
    common = dist_checkpointing.load_common_state_dict(str(path))
    if optimizer is not None:
        _check_optimizer_format(path, common, optimizer)
        _prime_distributed_optimizer(optimizer)
        request["optimizer"] = optimizer.sharded_state_dict(model_sd, is_loading=True, metadata=OPTIMIZER_METADATA)
    with_rng = rng and common.get("layout") == _layout()
    if with_rng:
        request["rng_state"] = _rng_object()
    state = dist_checkpointing.load(request, str(path))
    if with_rng:
        _restore_rng(state["rng_state"])
    model.load_state_dict(state["model"])
    if optimizer is not None:
        with torch.no_grad():  # fp32 distributed-optimizer main params are views of the model's parameters
            optimizer.load_state_dict(state["optimizer"])
        _restore_adam_steps(optimizer, state.get("adam_step", common.get("adam_step")))
    if scheduler is not None and "scheduler" in state:
        scheduler.load_state_dict(state["scheduler"])
    return {"step": state.get("step", common.get("step")), "extra": state.get("extra", common.get("extra")),
            "rng_restored": with_rng}
