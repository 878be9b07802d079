"""Training throughput and model FLOP utilisation of keel's megatron-core path, against megatron-core's own
local-spec attention, through the real entry point.

    python benchmarks/train_mfu.py --preset 1.3b [--steps 30] [--micro-batch 4] [--seq 2048]   # one GPU, bf16
    python benchmarks/train_mfu.py --cpu [--steps 8]                                          # CPU, fp32

Builds a synthetic indexed dataset (random token ids, a 50,257-token vocabulary unless --vocab), then trains twice through
`torchrun -m model.train` (the entry point the pipeline uses), with identical data, seed and config except the
core attention: keel's `sdpa` (torch's fused scaled_dot_product_attention) and the peer, megatron-core's
`DotProductAttention` as used by its local layer spec (`unfused`). Reports tokens/s, model TFLOP/s per GPU and MFU
(6N + attention FLOPs per token, against the GPU's dense bf16 peak), medians over the steps after warm-up, the
ratio keel/peer and the largest loss difference between the two runs. Transformer Engine, when installed, replaces
both (the run then says so). `--no-peer` skips the comparison run.

Without a CUDA GPU and without `--cpu` it prints a skip record. `--cpu` trains a CPU-sized model (4 layers,
hidden 256, sequence 1024) to measure the attention paths where no GPU is available; it reports no MFU.
Last line: one JSON object with at least preset, mfu, tflops_per_gpu, tokens_per_s.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VOCAB = 50_257
CPU_MODEL = {"num_layers": 4, "hidden_size": 256, "num_attention_heads": 8}


def synthetic_shard(path: Path, documents: int, doc_tokens: int, vocab: int) -> str:
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    rng = np.random.default_rng(0)
    b = IndexedDatasetBuilder(str(path) + ".bin", dtype=np.uint16)
    for _ in range(documents):
        b.add_document(torch.from_numpy(rng.integers(1, vocab - 1, doc_tokens).astype(np.int64)), [doc_tokens])
    b.finalize(str(path) + ".idx")
    return str(path)


def train(tmp: Path, name: str, spec, prefix: str, args, attention: str, bf16: bool) -> dict:
    """One torchrun training run; returns its per-step metric rows (or an error)."""
    from model.job import DataBlend, TrainJob, write

    out = tmp / name
    job = TrainJob(spec=spec, tensor_parallel=1, pipeline_parallel=1, steps=args.steps,
                   micro_batch_size=args.micro_batch, global_batch_size=args.global_batch, lr=3e-4, min_lr=3e-5,
                   warmup_steps=2, weight_decay=0.1, clip_grad=1.0, save_interval=0, save_interval_s=0,
                   keep_checkpoints=0, attention=attention,
                   recompute=args.recompute, distributed_optimizer=False, overlap_grad_reduce=False, bf16=bf16,
                   bf16_on_cpu=False, seed=1, data=DataBlend(prefixes=[prefix], weights=[1.0], identity="bench"),
                   eod=0, tokenizer_vocab=args.vocab, out_dir=str(out), init_from="", init_from_manifest="",
                   metrics_path=f"{out}.metrics.jsonl", result_path=f"{out}.result.json", heartbeat_dir=f"{out}.heartbeat",
                   stopped_path=f"{out}.stopped.json", fence_path="", fence_token="", skip_final_checkpoint=True)
    write(job, tmp / f"{name}.json")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "model.train",
           "--config", str(tmp / f"{name}.json")]
    print(f"[{name}] " + " ".join(cmd), flush=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        print(f"[{name}] failed (exit {proc.returncode}): " + " | ".join(tail), flush=True)
        return {"error": tail[-1] if tail else f"exit {proc.returncode}"}
    rows = [json.loads(x) for x in Path(job.metrics_path).read_text().splitlines()]
    return {"rows": rows}


def summarise(run: dict, warmup: int) -> dict:
    if "error" in run:
        return {"error": run["error"]}
    rows = run["rows"][warmup:]
    med = lambda key: statistics.median(r.get(key) or 0 for r in rows)  # noqa: E731
    return {"tokens_per_s": med("tokens_per_s"), "tflops_per_gpu": med("tflops_per_gpu"),
            "mfu": med("mfu") if any(r.get("mfu") for r in rows) else None,
            "max_memory_gib": max((r["max_memory_gib"] for r in rows if "max_memory_gib" in r), default=None),
            "steps_measured": len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="1.3b")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--global-batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--cpu", action="store_true", help="CPU-sized model in fp32 (no MFU)")
    ap.add_argument("--no-peer", action="store_true", help="skip the megatron-core DotProductAttention run")
    ap.add_argument("--recompute", default="none", choices=("none", "selective", "full"))
    ap.add_argument("--vocab", type=int, default=VOCAB, help="tokenizer vocabulary (token ids stay below it)")
    args = ap.parse_args()
    import torch

    from tasks.train.config import ModelConfig

    on_gpu = torch.cuda.is_available() and not args.cpu
    if not on_gpu and not args.cpu:
        print(json.dumps({"preset": args.preset, "skipped": True, "reason": "no CUDA GPU", "mfu": None,
                          "tflops_per_gpu": None, "tokens_per_s": None}))
        return
    if args.cpu:
        args.preset, args.seq, args.micro_batch, args.global_batch = "cpu-4x256", 1024, 4, 8
        args.steps = min(args.steps, 8)
        spec = ModelConfig(preset="tiny", seq_length=args.seq, **CPU_MODEL).spec(args.vocab)
    else:
        spec = ModelConfig(preset=args.preset, seq_length=args.seq).spec(args.vocab)
    try:
        import transformer_engine  # noqa: F401
        te = on_gpu
    except ImportError:
        te = False
    tmp = Path(tempfile.mkdtemp(prefix="keel-mfu-"))
    prefix = synthetic_shard(tmp / "synthetic", max(64, args.steps * args.global_batch // 4), 4 * args.seq + 1,
                             args.vocab)
    warmup = 2 if args.cpu else 5
    runs = {"keel": train(tmp, "keel", spec, prefix, args, "sdpa", bf16=on_gpu)}
    if not args.no_peer:
        runs["peer"] = train(tmp, "peer", spec, prefix, args, "unfused", bf16=on_gpu)
    figures = {name: summarise(run, warmup) for name, run in runs.items()}
    for name, f in figures.items():
        print(f"{name:5s} " + ", ".join(f"{k} {v:,.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in f.items()))
    keel = figures["keel"]
    out = {"preset": args.preset, "params": spec.num_params(), "seq_length": args.seq, "vocab": spec.vocab_size,
           "micro_batch": args.micro_batch, "global_batch": args.global_batch, "recompute": args.recompute,
           "device": torch.cuda.get_device_name() if on_gpu else "cpu", "precision": "bf16" if on_gpu else "fp32",
           "attention": "transformer_engine" if te else "sdpa",
           "tokens_per_s": keel.get("tokens_per_s"), "tflops_per_gpu": keel.get("tflops_per_gpu"),
           "mfu": keel.get("mfu"), "max_memory_gib": keel.get("max_memory_gib"), "error": keel.get("error")}
    peer = figures.get("peer")
    if peer is not None:
        out.update(peer_attention="megatron_core_dot_product_attention", peer_tokens_per_s=peer.get("tokens_per_s"),
                   peer_mfu=peer.get("mfu"), peer_max_memory_gib=peer.get("max_memory_gib"),
                   peer_error=peer.get("error"))
        if "rows" in runs["keel"] and "rows" in runs["peer"]:
            out["ratio"] = keel["tokens_per_s"] / peer["tokens_per_s"]
            out["max_loss_diff"] = max(abs(a["loss"] - b["loss"]) for a, b in zip(runs["keel"]["rows"],
                                                                                   runs["peer"]["rows"]))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
