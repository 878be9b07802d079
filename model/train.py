"""Training entry point: `torchrun --nproc_per_node=N -m model.train --config run.json`.

Real megatron-core path: parallel_state (TP/PP/DP), GPTModel, megatron DDP + optimizer, cosine LR schedule with
warm-up, gradient clipping, the pipeline schedule from `get_forward_backward_func`, the blended GPT dataset,
and dist_checkpointing with automatic resume. gloo + a CPU compatibility layer on CPU, NCCL on GPU.

The job file is a `model.job.TrainJob` (written by tasks/train/stage.py; every field explicit, no defaults here).
Rank 0 appends one JSON line per step to metrics_path and writes a `TrainOutput` to result_path at the end.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import time
from functools import partial
from pathlib import Path

from model.lifecycle import Heartbeat, StopRequest

# before the slow imports when run as the trainer: a scheduler's signal may come at any time
STOP = StopRequest().install() if __name__ == "__main__" else StopRequest()

import torch  # noqa: E402

from model import checkpoint
from model.data import ShardTokenizer, build_blended, realized_mix
from model.gpt import build_model, init_distributed
from model.job import TrainJob, TrainOutput, write


def _batches(dataset, step: int, gbs: int, mbs: int, dp_rank: int, dp_size: int, device: str):
    """Micro-batches of optimizer step `step` for this data-parallel rank (deterministic: resumable)."""
    per_rank = gbs // dp_size
    start = step * gbs + dp_rank * per_rank
    for m in range(0, per_rank, mbs):
        items = [dataset[i] for i in range(start + m, start + m + mbs)]
        batch = {k: torch.stack([it[k] for it in items]) for k in ("tokens", "labels", "loss_mask", "position_ids")}
        if device == "cuda":  # pinned + non-blocking: the copy does not wait for the GPU's queued work
            batch = {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
        yield batch


def _forward_step(data_iterator, model):
    batch = next(data_iterator)
    output = model(batch["tokens"], batch["position_ids"], None, labels=batch["labels"])

    def loss_func(loss_mask, output_tensor):
        mask = loss_mask.view(-1).float()
        loss = torch.sum(output_tensor.view(-1).float() * mask) / mask.sum()
        return loss, {"lm loss": loss.detach().clone()}

    return output, partial(loss_func, batch["loss_mask"])


def _reduce_loss(losses: list[dict], device: str) -> float:
    """Mean 'lm loss' over micro-batches and data-parallel ranks, made visible on global rank 0."""
    from megatron.core import parallel_state as ps

    value = torch.zeros(1, device=device)
    if ps.is_pipeline_last_stage() and losses:
        value[0] = torch.stack([d["lm loss"] for d in losses]).mean()
        torch.distributed.all_reduce(value, group=ps.get_data_parallel_group())
        value /= ps.get_data_parallel_world_size()
    if ps.get_pipeline_model_parallel_world_size() > 1:
        torch.distributed.broadcast(value, src=ps.get_pipeline_model_parallel_last_rank(),
                                    group=ps.get_pipeline_model_parallel_group())
    return float(value.item())


def _peak_flops() -> float | None:
    """Dense bf16 peak of the accelerator (KEEL_PEAK_TFLOPS overrides); None on CPU."""
    if os.environ.get("KEEL_PEAK_TFLOPS"):
        return float(os.environ["KEEL_PEAK_TFLOPS"]) * 1e12
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, tflops in (("H200", 989.0), ("H100", 989.0), ("A100", 312.0)):
        if key in name:
            return tflops * 1e12
    return None


def _agreed_resume_step(out_dir: Path, rank0: bool) -> int | None:
    """Rank 0 picks the newest checkpoint that verifies (skipping broken ones); every rank resumes from it."""
    choice = [checkpoint.newest_valid_step(out_dir, warn=lambda m: print(f"warning: {m}", flush=True))
              if rank0 else None]
    torch.distributed.broadcast_object_list(choice, src=0)
    return choice[0]


def _agree(stop: bool, timed: bool, device: str) -> tuple[bool, bool]:
    flags = torch.tensor([int(stop), int(timed)], dtype=torch.int32, device=device)
    torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
    return bool(flags[0]), bool(flags[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    job = TrainJob.read(args.config)
    spec = job.spec
    device = init_distributed(job.tensor_parallel, job.pipeline_parallel, job.seed)

    from megatron.core import parallel_state as ps
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler
    from megatron.core.pipeline_parallel import get_forward_backward_func

    bf16 = job.bf16 and (device == "cuda" or job.bf16_on_cpu)  # on CPU: tests only
    model = build_model(spec, bf16=bf16, attention=job.attention, recompute=job.recompute)
    dist_opt = job.distributed_optimizer
    overlap = job.overlap_grad_reduce
    ddp = DistributedDataParallel(model.config, DistributedDataParallelConfig(
        grad_reduce_in_fp32=True, use_distributed_optimizer=dist_opt, overlap_grad_reduce=overlap), model)
    if overlap:  # no reduction during the first micro-batches; on the last, each bucket's runs during backward
        model.config.no_sync_func = ddp.no_sync
        model.config.grad_sync_func = ddp.start_grad_sync
    # Data-parallel grad all-reduce and the tied-embedding all-reduce between first and last pipeline stages.
    model.config.finalize_model_grads_func = finalize_model_grads
    optimizer = get_megatron_optimizer(
        OptimizerConfig(optimizer="adam", lr=job.lr, min_lr=job.min_lr, weight_decay=job.weight_decay,
                        adam_beta1=0.9, adam_beta2=0.95, clip_grad=job.clip_grad, bf16=bf16,
                        use_distributed_optimizer=dist_opt,
                        params_dtype=torch.bfloat16 if bf16 else torch.float32),
        [ddp])
    steps = job.steps
    scheduler = OptimizerParamScheduler(
        optimizer, init_lr=0.0, max_lr=job.lr, min_lr=job.min_lr, lr_warmup_steps=job.warmup_steps,
        lr_decay_steps=steps, lr_decay_style="cosine", start_wd=job.weight_decay, end_wd=job.weight_decay,
        wd_incr_steps=steps, wd_incr_style="constant")

    out_dir = Path(job.out_dir)
    rank0 = torch.distributed.get_rank() == 0
    start, loss = 0, float("nan")
    resumed = _agreed_resume_step(out_dir, rank0)
    if resumed is not None:
        state = checkpoint.load(checkpoint.step_dir(out_dir, resumed), model, optimizer, scheduler, rng=True,
                                checked=True)  # rank 0 verified it when choosing it
        start, loss = state["step"], float((state["extra"] or {}).get("loss", float("nan")))
        if not state["rng_restored"]:  # new parallel layout: a deterministic fresh stream per (seed, step)
            torch.manual_seed(job.seed + start)
        if rank0:
            print(f"resuming from checkpoint step {resumed}", flush=True)
    elif job.init_from:
        checkpoint.load(job.init_from, model, manifest_sha=job.init_from_manifest)  # weights only: fresh optimizer, LR re-warm-up

    gbs, mbs = job.global_batch_size, job.micro_batch_size
    dp_size, dp_rank = ps.get_data_parallel_world_size(), ps.get_data_parallel_rank()
    prefixes, weights = job.data.prefixes, job.data.weights
    tokenizer = ShardTokenizer(job.tokenizer_vocab, job.eod, job.data.identity)
    dataset = build_blended(prefixes, weights, steps * gbs, spec.seq_length, tokenizer, job.seed,
                            str(out_dir / "data_cache"))
    metrics = open(job.metrics_path, "a") if rank0 else None
    forward_backward = get_forward_backward_func()
    peak = _peak_flops()
    world = torch.distributed.get_world_size()
    tokens_per_step = gbs * spec.seq_length
    stop = STOP
    heartbeat = Heartbeat(job.heartbeat_dir, torch.distributed.get_rank(), stop=stop).start(start)
    last_save = time.monotonic()
    checkpoint.protect_writer()  # now, not at the first save: that may be the one a stop signal asks for

    def save(done: int) -> None:
        nonlocal last_save
        checkpoint.save(out_dir, done, model, optimizer, scheduler, {"consumed_samples": done * gbs, "loss": loss},
                        keep=job.keep_checkpoints, fence=(job.fence_path, job.fence_token))
        last_save = time.monotonic()

    for step in range(start, steps):
        t0 = time.perf_counter()
        ddp.zero_grad_buffer()
        optimizer.zero_grad()
        losses = forward_backward(
            forward_step_func=_forward_step,
            data_iterator=_batches(dataset, step, gbs, mbs, dp_rank, dp_size, device),
            model=ddp, num_microbatches=gbs // (mbs * dp_size), seq_length=spec.seq_length,
            micro_batch_size=mbs, decoder_seq_length=spec.seq_length, forward_only=False)
        ok, grad_norm, _ = optimizer.step()
        scheduler.step(increment=1)
        loss = _reduce_loss(losses, device)
        dt = time.perf_counter() - t0
        if rank0:
            tps = tokens_per_step / dt
            rec = {"step": step + 1, "loss": loss, "lr": scheduler.get_lr(optimizer.param_groups[0]),
                   "grad_norm": float(grad_norm) if grad_norm is not None else None, "tokens_per_s": tps,
                   "step_time_s": dt, "skipped": not ok,
                   "tflops_per_gpu": tps * spec.flops_per_token() / world / 1e12}
            if peak:
                rec["mfu"] = rec["tflops_per_gpu"] * 1e12 / peak
            rec["max_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # host memory (KiB)
            if device == "cuda":
                rec["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
            metrics.write(json.dumps(rec) + "\n")
            metrics.flush()
            eta = (steps - step - 1) * dt
            print(f"step {step + 1}/{steps} loss {loss:.4f} lr {rec['lr']:.2e} grad_norm {rec['grad_norm'] or 0:.3f} "
                  f"tokens/s {tps:,.0f} eta {eta:.0f}s", flush=True)
        done = step + 1
        heartbeat.completed(done)
        # one small collective per step: did any rank get a stop signal, is a timed checkpoint due (rank 0's clock)
        stopping, timed = _agree(stop.requested, rank0 and job.save_interval_s > 0
                                 and time.monotonic() - last_save >= job.save_interval_s, device)
        final = done == steps and not job.skip_final_checkpoint  # benchmarks measure, keep nothing
        if stopping:
            if done < steps or not job.skip_final_checkpoint:
                save(done)
            if rank0:
                stop.write(job.stopped_path, done)
                metrics.close()
                print(f"stopped by {signal.Signals(stop.signal or signal.SIGTERM).name} after step {done}; "
                      f"checkpoint saved", flush=True)
            heartbeat.close()
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
            return
        if (job.save_interval and done % job.save_interval == 0) or timed or final:
            save(done)

    heartbeat.close()
    mix = realized_mix(dataset, prefixes, steps * gbs)
    if rank0:
        last = None if job.skip_final_checkpoint else str(checkpoint.step_dir(out_dir, steps))
        write(TrainOutput(final_loss=loss, steps=steps, checkpoint=last, samples_per_prefix=mix,
                          tokens_per_sample=spec.seq_length + 1, num_params=spec.num_params(), resumed_from=resumed,
                          world_size=world), job.result_path)
        metrics.close()
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
