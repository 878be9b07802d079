"""Model FLOP utilisation of keel's megatron-core training path on one GPU.

    python benchmarks/train_mfu.py --preset 1.3b [--steps 30] [--micro-batch 4] [--seq 2048]

Builds synthetic indexed datasets (random token ids, a 50,304-token vocabulary), trains the preset in bf16
through `torchrun -m model.train` (the same entry point the pipeline uses) and reports model TFLOP/s per GPU
and MFU (6N + attention FLOPs per token, against the GPU's dense bf16 peak), averaged over the steps after
warm-up. Without a CUDA GPU it prints a skip record. Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="1.3b")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--global-batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=2048)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print(json.dumps({"preset": args.preset, "skipped": True, "reason": "no CUDA GPU", "mfu": None,
                          "tflops_per_gpu": None, "tokens_per_s": None}))
        return
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    from model.presets import resolve_spec

    tmp = Path(tempfile.mkdtemp(prefix="keel-mfu-"))
    rng = np.random.default_rng(0)
    b = IndexedDatasetBuilder(str(tmp / "synthetic.bin"), dtype=np.uint16)
    for _ in range(max(64, args.steps * args.global_batch // 4)):
        b.add_document(torch.from_numpy(rng.integers(1, 50_000, 4 * args.seq + 1).astype(np.int64)), [4 * args.seq + 1])
    b.finalize(str(tmp / "synthetic.idx"))
    spec = resolve_spec({"preset": args.preset, "seq_length": args.seq}, 50_257)
    cfg = {"spec": dataclasses.asdict(spec), "seed": 1, "eod": 0, "tokenizer_vocab": 50_257, "init_from": "", "bf16": True,
           "train": {"nproc": 1, "tensor_parallel": 1, "pipeline_parallel": 1, "steps": args.steps,
                     "micro_batch_size": args.micro_batch, "global_batch_size": args.global_batch, "lr": 3e-4,
                     "min_lr": 3e-5, "warmup_steps": 2, "weight_decay": 0.1, "clip_grad": 1.0,
                     "save_interval": 10 ** 9, "mix": {}},
           "data": {"prefixes": [str(tmp / "synthetic")], "weights": [1.0]}, "out_dir": str(tmp / "out"),
           "metrics_path": str(tmp / "metrics.jsonl"), "result_path": str(tmp / "result.json")}
    (tmp / "cfg.json").write_text(json.dumps(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "model.train",
           "--config", str(tmp / "cfg.json")]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    rows = [json.loads(x) for x in (tmp / "metrics.jsonl").read_text().splitlines()][5:]
    out = {"preset": args.preset, "params": spec.num_params(), "gpu": torch.cuda.get_device_name(),
           "tokens_per_s": statistics.median(r["tokens_per_s"] for r in rows),
           "tflops_per_gpu": statistics.median(r["tflops_per_gpu"] for r in rows),
           "mfu": statistics.median(r.get("mfu") or 0 for r in rows),
           "max_memory_gib": max(r.get("max_memory_gib", 0) for r in rows), "steps_measured": len(rows)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
