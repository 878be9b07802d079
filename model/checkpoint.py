"""Checkpoints with megatron-core dist_checkpointing: model + optimizer + scheduler + data position + RNG state.

RNG state (Python, NumPy, torch CPU and CUDA, megatron's model-parallel RNG tracker that drives dropout) is saved
per rank as a ShardedObject indexed by (pipeline, tensor, data) rank, as Megatron-LM does; it is restored when
the layout is unchanged and re-seeded from (seed, step) when a checkpoint is loaded into a different layout.

megatron-core's DistributedOptimizer (ZeRO-1) is supported with the repairs its torch-Adam fallback needs
(Adam `step` saved and restored per parameter, state primed before loading, loads under no_grad).

Layout: <dir>/iter_0000042/ (torch_dist format, reshardable across TP/PP) holding, once complete, a manifest
`keel_manifest.json` (every file with its size and sha256, written and fsynced after the checkpoint's files), and
<dir>/latest (the step, moved last, atomically, fsynced). Resuming takes the newest checkpoint whose manifest
verifies; a partial or corrupt one (killed mid-save, truncated, a file missing) is skipped with a warning.

Nothing is loaded unverified: megatron's loader unpickles checkpoint metadata, so every file is checked against
the manifest first (on rank 0, the others wait for its answer), a file the manifest does not list is refused, and
a caller that recorded the manifest's own sha256 when the checkpoint was written (the stage result, the stage
marker, MLflow) passes it so that a rewritten manifest is refused too.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch

from model.integrity import CHECKPOINT_MANIFEST, IntegrityError, sha256_file
from model.lifecycle import fsync_dir, write_json_durably

MANIFEST = CHECKPOINT_MANIFEST
_ITER = re.compile(r"^iter_(\d{7})$")


def step_dir(root: str | Path, step: int) -> Path:
    return Path(root) / f"iter_{step:07d}"


def latest_step(root: str | Path) -> int | None:
    """The step the `latest` pointer names (a hint: `newest_valid_step` is what resuming uses)."""
    marker = Path(root) / "latest"
    if not marker.is_file():
        return None
    return int(marker.read_text().strip())


_sha256 = sha256_file


def write_manifest(target: Path) -> dict:
    """Record every file of a complete checkpoint (size, sha256), durably."""
    files = [{"path": str(p.relative_to(target)), "size": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(target.rglob("*")) if p.is_file() and p.name != MANIFEST]
    manifest = {"files": files, "bytes": sum(f["size"] for f in files)}
    for p in {target, *(Path(target / f["path"]).parent for f in files)}:
        fsync_dir(p)
    write_json_durably(target / MANIFEST, manifest)
    return manifest


def verify(target: Path, hashes: bool = True) -> str | None:
    """None when the checkpoint is complete and intact, else what is wrong."""
    path = target / MANIFEST
    if not path.is_file():
        return "no manifest (the save did not finish)"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return f"unreadable manifest ({exc})"
    listed = {f["path"] for f in manifest["files"]}
    extra = sorted(str(p.relative_to(target)) for p in target.rglob("*")
                   if p.is_file() and p.name != MANIFEST and str(p.relative_to(target)) not in listed)
    if extra:
        return f"{extra[0]} is not in the manifest"
    for f in manifest["files"]:
        p = target / f["path"]
        if not p.is_file():
            return f"{f['path']} is missing"
        if p.stat().st_size != f["size"]:
            return f"{f['path']} has {p.stat().st_size} bytes, the manifest says {f['size']}"
        if hashes and _sha256(p) != f["sha256"]:
            return f"{f['path']} does not match its sha256"
    return None


def manifest_sha256(target: str | Path) -> str:
    """The sha256 of a checkpoint's manifest: recorded by whoever keeps the checkpoint, checked before loading it."""
    return _sha256(Path(target) / MANIFEST)


def check_before_load(target: str | Path, manifest_sha: str = "") -> None:
    """Refuse (IntegrityError naming the file) a checkpoint whose manifest is not the one recorded (`manifest_sha`)
    or whose files differ from its manifest. Rank 0 reads the files; every rank gets its answer."""
    target = Path(target)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    problem = [None]
    if not distributed or torch.distributed.get_rank() == 0:
        if manifest_sha and (target / MANIFEST).is_file() and manifest_sha256(target) != manifest_sha:
            problem[0] = f"{MANIFEST} does not match the sha256 recorded when the checkpoint was written"
        else:
            problem[0] = verify(target)
    if distributed:
        torch.distributed.broadcast_object_list(problem, src=0)
    if problem[0]:
        raise IntegrityError(f"checkpoint {target} refused: {problem[0]} (it changed since it was written; "
                             f"nothing of it was loaded)")


def steps_on_disk(root: str | Path) -> list[int]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted((int(m.group(1)) for p in root.iterdir() if (m := _ITER.match(p.name)) and p.is_dir()), reverse=True)


def newest_valid_step(root: str | Path, warn=print) -> int | None:
    """The newest checkpoint that verifies; broken ones are reported and skipped."""
    for step in steps_on_disk(root):
        problem = verify(step_dir(root, step))
        if problem is None:
            return step
        warn(f"checkpoint {step_dir(root, step)} skipped: {problem}")
    return None


def commit_latest(root: str | Path, step: int) -> None:
    """Move the `latest` pointer (after the checkpoint and its manifest are durable)."""
    tmp = Path(root) / f".latest.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(str(step))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, Path(root) / "latest")
    fsync_dir(root)


def prune(root: str | Path, keep: int) -> list[int]:
    """Delete all but the newest `keep` valid checkpoints (size check only), and broken ones older than them."""
    if keep <= 0:
        return []
    kept, removed = 0, []
    for step in steps_on_disk(root):
        if kept < keep and verify(step_dir(root, step), hashes=False) is None:
            kept += 1
            continue
        if kept >= keep:
            shutil.rmtree(step_dir(root, step), ignore_errors=True)
            removed.append(step)
    return removed


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


_writer_manager = None


def _stop_signals() -> set:
    import signal

    return {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP}


def _writer_manager_init() -> None:
    """In megatron's checkpoint-writer manager process: survive the stop signals sent to the whole job (the trainer
    is saving on their account and needs it), and die with the trainer (PR_SET_PDEATHSIG) instead. The process
    starts with those signals blocked (see `protect_writer`): ignore them, then unblock (a pending one is dropped)."""
    import signal

    for sig in _stop_signals():
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _stop_signals())
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def protect_writer() -> None:
    """megatron-core's torch_dist save collects results through a multiprocessing manager it spawns on first use.
    A scheduler's SIGTERM or SIGUSR1 reaches every process of the job, so the manager died exactly when the trainer
    saved a checkpoint on its way out. Start that manager here, immune to those signals: they are blocked while it
    is spawned (a child inherits the mask), so one arriving during its start-up, before its initializer ran, stays
    pending instead of killing it; the trainer's own handler runs once the mask is restored. The trainer calls this
    before its first step, so that a stop signal never finds the manager still to be started."""
    global _writer_manager
    import signal

    from megatron.core.dist_checkpointing.strategies import filesystem_async

    if filesystem_async._results_queue is not None:
        return
    import multiprocessing as mp
    from multiprocessing.managers import SyncManager

    from multiprocessing import resource_tracker

    for attempt in range(3):
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _stop_signals())
        try:
            # multiprocessing's resource tracker, (re)started here, unblocks SIGINT/SIGTERM on its way (it ignores
            # those itself; with SIGUSR1/SIGHUP blocked it inherits immunity to them too): block them again after
            resource_tracker.ensure_running()
            signal.pthread_sigmask(signal.SIG_BLOCK, _stop_signals())
            manager = SyncManager(ctx=mp.get_context("spawn"))
            manager.start(initializer=_writer_manager_init)
            break
        except EOFError:  # it died starting all the same (a tracker killed and restarted meanwhile): once more
            if attempt == 2:
                raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    _writer_manager = manager
    filesystem_async._results_queue = manager.Queue()


# Distributed-optimizer state is saved in megatron-core's dp_reshardable format: fully parallel, reloadable under
# another data-parallel size. (Its fully_reshardable format does not load without Apex/TE in megatron-core 0.16.1.)
OPTIMIZER_METADATA = {"distrib_optim_sharding_type": "dp_reshardable"}


class FenceLost(RuntimeError):
    """Another run took the output root: this job must not move its checkpoint pointer."""


def check_fence(path: str, token: str) -> None:
    if not path:
        return
    try:
        owner = json.loads(Path(path).read_text()).get("token")
    except (OSError, ValueError):
        owner = None
    if owner != token:
        raise FenceLost(f"the output root now belongs to another run (lock record {path}); stopping without "
                        "moving the checkpoint pointer")


def save(root: str | Path, step: int, model, optimizer, scheduler, extra: dict, keep: int = 0,
         fence: tuple[str, str] = ("", "")) -> Path:
    """Save a checkpoint on every rank; rank 0 then writes its manifest, checks the output-root fence, moves
    `latest` and prunes old ones."""
    from megatron.core import dist_checkpointing

    protect_writer()
    target = step_dir(root, step)
    if torch.distributed.get_rank() == 0:
        if target.exists():  # a save of this step that never finished
            shutil.rmtree(target)
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
        check_fence(*fence)  # a job whose run lost the output root leaves no valid checkpoint behind
        write_manifest(target)
        commit_latest(root, step)
        prune(root, keep)
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


def load(path: str | Path, model, optimizer=None, scheduler=None, rng: bool = False, manifest_sha: str = "",
         checked: bool = False) -> dict:
    """Load model (and optimizer/scheduler when given) from one checkpoint directory; returns common state.
    With `rng`, restores every RNG of this rank if the checkpoint has the same (PP, TP, DP) layout;
    `rng_restored` in the result says whether it did. The checkpoint is verified first (`check_before_load`)
    unless the caller just did (`checked`)."""
    from megatron.core import dist_checkpointing

    if not checked:
        check_before_load(path, manifest_sha)
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
