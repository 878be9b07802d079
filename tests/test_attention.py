"""SDPAttention (torch's fused attention kernels) computes what megatron-core's DotProductAttention computes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_sdpa_core_attention_matches_megatron_dot_product_attention():
    script = Path(__file__).with_name("attention_parity.py")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(script.parent.parent)}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    diffs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(diffs) == {"causal", "gqa", "mask", "qk_scaling"}
    for case, d in diffs.items():
        assert d["shape_equal"], case
        assert d["out"] < 1e-5 and d["grad"] < 1e-4, (case, d)  # fp32 on CPU; different summation order only


def test_unknown_attention_backend_is_refused():
    from model.attention import use_backend

    with pytest.raises(ValueError, match="sdpa, unfused"):
        use_backend(None, "flash3")
