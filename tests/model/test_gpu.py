"""The GPU path (NCCL, bf16, CUDA kernels): runs where a CUDA device is present, skipped elsewhere."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.model.test_training import _config, _losses, _run, shards  # noqa: F401  (fixture)

pytestmark = pytest.mark.gpu


def _gpu_config(tmp_path, name, shards, attention, tp=1):  # noqa: F811
    cfg = _config(tmp_path, name, shards, tp=tp, steps=6,
                  spec_over={"seq_length": 128, "hidden_size": 128, "num_attention_heads": 4})
    data = json.loads(cfg.read_text())
    data["bf16"] = True
    data["attention"] = attention
    cfg.write_text(json.dumps(data))
    return cfg


def test_bf16_training_on_cuda_with_sdpa_matches_megatron_attention(tmp_path, shards):  # noqa: F811
    runs = {}
    for attention in ("sdpa", "unfused"):
        cfg = _gpu_config(tmp_path, attention, shards, attention)
        _run(cfg, 1)
        runs[attention] = _losses(cfg)
        rows = [json.loads(x) for x in Path(json.loads(cfg.read_text())["metrics_path"]).read_text().splitlines()]
        assert all(r["max_memory_gib"] > 0 and r["tflops_per_gpu"] > 0 for r in rows)
    sdpa, unfused = runs["sdpa"], runs["unfused"]
    assert sdpa[6] < sdpa[1], sdpa  # it learns
    assert all(abs(sdpa[s] - unfused[s]) < 2e-2 for s in sdpa), (sdpa, unfused)  # bf16 kernels differ in rounding


def test_mfu_benchmark_reports_a_measured_figure():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "train_mfu.py"), "--preset", "125m", "--steps", "8",
                           "--global-batch", "8", "--no-peer"], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["preset"] == "125m" and out["error"] is None
    assert out["tflops_per_gpu"] > 0 and out["tokens_per_s"] > 0 and out["max_memory_gib"] > 0
    if out["mfu"] is not None:  # peak known for this GPU (H100/H200/A100 or KEEL_PEAK_TFLOPS)
        assert 0 < out["mfu"] < 1
