"""Training stages (pretrain, specialize): blend planning, job config, launch, metrics.

Blend weights come from the recipe's per-domain mix; inside a domain each source's train dataset is weighted
by its token count. The realized mix (samples and tokens per domain and source, epochs per source) is computed
from the blended dataset the job actually built and returned with the result.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

from model.presets import ModelSpec
from tasks.launch import render_pytorchjob, render_slurm, run_job, submit, torchrun_cmd


def blend(datasets: list[dict], mix: dict[str, float], split: str = "train") -> dict:
    """Per-prefix weights (sum 1) from per-domain weights; ValueError when a domain has no data."""
    total_w = sum(mix.values())
    prefixes, weights, owners = [], [], []
    for domain, w in sorted(mix.items()):
        if w <= 0:
            continue
        ds = [d for d in datasets if d["domain"] == domain and d["split"] == split and d["num_tokens"] > 0]
        if not ds:
            known = sorted({d["domain"] for d in datasets})
            raise ValueError(f"mix names domain {domain!r} but no {split} data has it; domains present: {known}")
        tokens = sum(d["num_tokens"] for d in ds)
        for d in ds:
            prefixes.append(d["prefix"])
            weights.append(w / total_w * d["num_tokens"] / tokens)
            owners.append(d)
    return {"prefixes": prefixes, "weights": weights, "datasets": owners}


def realized(result: dict, plan: dict) -> dict:
    """Realized samples/tokens per domain and source, shares, and epochs per source."""
    per_prefix = result["samples_per_prefix"]
    tps = result["tokens_per_sample"]
    total = sum(per_prefix.values()) or 1
    by_domain: dict[str, int] = {}
    sources = {}
    for d in plan["datasets"]:
        n = per_prefix.get(d["prefix"], 0)
        by_domain[d["domain"]] = by_domain.get(d["domain"], 0) + n
        sources[d["source_id"]] = {"samples": n, "tokens": n * tps, "share": n / total,
                                   "epochs": n * tps / max(d["num_tokens"], 1)}
    return {"samples": total, "tokens": total * tps,
            "domain_share": {k: v / total for k, v in sorted(by_domain.items())}, "sources": sources}


def train(kind: str, work_dir: str, spec: ModelSpec, train_cfg: dict, manifest: dict, seed: int,
          init_from: str, log: Callable[[str], None], bf16: bool = False) -> dict:
    """Run one training job to completion (resuming from work_dir/checkpoints if present)."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    plan = blend(manifest["datasets"], train_cfg["mix"])
    cfg = {"spec": dataclasses.asdict(spec), "train": train_cfg, "seed": seed, "bf16": bf16,
           "data": {"prefixes": plan["prefixes"], "weights": plan["weights"],
                    "identity": manifest["tokenizer"]["sha256"]},
           "eod": manifest["eod"], "tokenizer_vocab": manifest["vocab_size"],
           "out_dir": str(work / "checkpoints"), "init_from": init_from,
           "metrics_path": str(work / "metrics.jsonl"), "result_path": str(work / "result.json")}
    config_path = work / f"{kind}.json"
    config_path.write_text(json.dumps(cfg, indent=1))
    launcher = train_cfg.get("launcher", "local")
    if launcher == "local":
        run_job(torchrun_cmd("model.train", str(config_path), train_cfg["nproc"]), log, train_cfg["timeout_s"],
                log_path=str(work / "train.log"))
    else:  # the work dir must be on storage the cluster shares
        per_node = max(train_cfg["nproc"] // train_cfg["nodes"], 1)
        if launcher == "slurm":
            text = render_slurm(kind, str(config_path), str(work), train_cfg["nodes"], per_node, train_cfg["partition"])
            job = work / f"{kind}.sbatch"
        else:
            text = render_pytorchjob(kind, str(config_path), str(work), train_cfg["nodes"], per_node, train_cfg["image"])
            job = work / f"{kind}.pytorchjob.yaml"
        job.write_text(text)
        submit(launcher, str(job), log, train_cfg["timeout_s"])
    result = json.loads((work / "result.json").read_text())
    metrics = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines() if line.strip()]
    result["realized_mix"] = realized(result, plan)
    result["planned_mix"] = {k: v / sum(train_cfg["mix"].values()) for k, v in sorted(train_cfg["mix"].items())}
    result["config_path"] = str(config_path)
    return {"result": result, "metrics": metrics}
