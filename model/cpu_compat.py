"""CPU compatibility layer for megatron-core training processes.

megatron-core hard-codes CUDA in a few places (device="cuda" tensors in the optimizer, clip_grads, pipeline
schedules and causal masks; `torch.cuda.current_device()` for buffers; the CUDA RNG tracker used by dropout).
On a CPU-only torch build those raise "Torch not compiled with CUDA". `enable()` maps all of them to the CPU.

It patches the *process*: call it only in CPU training processes (gloo), never on a GPU machine and never in
the orchestrating flow process.
"""
from __future__ import annotations

import logging

import torch
from torch.overrides import TorchFunctionMode

_ENABLED = False
_CUDA_TYPE_NAMES = {
    "torch.FloatTensor": "torch.cuda.FloatTensor",
    "torch.HalfTensor": "torch.cuda.HalfTensor",
    "torch.BFloat16Tensor": "torch.cuda.BFloat16Tensor",
}


def _is_cuda(device) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    if isinstance(device, str):
        return device.startswith("cuda")
    return False


class _CudaToCpu(TorchFunctionMode):
    """Rewrites CUDA device requests to CPU for every torch call made while the mode is active."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if _is_cuda(kwargs.get("device")):
            kwargs["device"] = "cpu"
        if func is torch.Tensor.cuda:
            return args[0]
        if func is torch.Tensor.to:
            args = tuple("cpu" if _is_cuda(a) else a for a in args)
        if func is torch.Tensor.type and len(args) == 1 and not kwargs:
            name = func(*args)
            return _CUDA_TYPE_NAMES.get(name, name)
        return func(*args, **kwargs)


def enable() -> None:
    """Apply the layer once per process; idempotent."""
    global _ENABLED
    if _ENABLED or torch.cuda.is_available():
        return
    _ENABLED = True

    cpu = torch.device("cpu")
    torch.cuda.current_device = lambda: cpu
    torch.cuda.synchronize = lambda *a, **k: None
    torch.cuda.empty_cache = lambda *a, **k: None
    torch.cuda.get_rng_state = lambda *a, **k: torch.get_rng_state()
    torch.cuda.set_rng_state = lambda state, *a, **k: torch.set_rng_state(state)
    torch.cuda.manual_seed = lambda seed: torch.default_generator.manual_seed(int(seed))

    from megatron.core.tensor_parallel import random as mrandom

    mrandom._get_cuda_rng_state = lambda *a, **k: torch.get_rng_state()
    mrandom._set_cuda_rng_state = lambda state, *a, **k: torch.set_rng_state(state)
    # The CPU generator doubles as the "CUDA" generator, so the tracker's "CPU RNG changed" warning is noise.
    logging.getLogger(mrandom.__name__).setLevel(logging.ERROR)

    _CudaToCpu().__enter__()
