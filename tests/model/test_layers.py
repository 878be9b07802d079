"""Layer-level options of the megatron-core model: keel's fused core attention computes what megatron-core's
DotProductAttention computes; activation recomputation re-runs what it says and changes no number."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _probe(script: str) -> dict:
    """Run a probe script in a fresh process (the CPU compatibility layer patches its process)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(HERE.parent)}
    proc = subprocess.run([sys.executable, str(HERE / script)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sdpa_core_attention_matches_megatron_dot_product_attention():
    diffs = _probe("attention_parity.py")
    assert set(diffs) == {"causal", "gqa", "mask", "qk_scaling"}
    for case, d in diffs.items():
        assert d["shape_equal"], case
        assert d["out"] < 1e-5 and d["grad"] < 1e-4, (case, d)  # fp32 on CPU; different summation order only


def test_unknown_attention_backend_is_refused():
    from model.attention import use_backend

    with pytest.raises(ValueError, match="sdpa, unfused"):
        use_backend(None, "flash3")


def test_activation_recompute_reruns_layers_and_keeps_loss_and_grads_with_dropout():
    runs = _probe("recompute_probe.py")
    layers = 3
    assert (runs["none"]["layer"], runs["none"]["core_attention"]) == (layers, layers)
    assert (runs["selective"]["layer"], runs["selective"]["core_attention"]) == (layers, 2 * layers)
    assert (runs["full"]["layer"], runs["full"]["core_attention"]) == (2 * layers, 2 * layers)
    for mode in ("selective", "full"):  # the RNG is replayed for the recomputed dropout: same numbers
        assert abs(runs[mode]["loss"] - runs["none"]["loss"]) < 1e-6, runs
        assert abs(runs[mode]["grad_norm"] - runs["none"]["grad_norm"]) < 1e-5, runs
