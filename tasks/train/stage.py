"""Training stages (pretrain, specialize, baseline): one definition run under three names.

The stage turns its settings into a typed `TrainJob` (model/job.py), runs `model.train` with torchrun here or as
a Slurm / Kubernetes job, and returns a `TrainResult`: checkpoint, per-step metrics, and the realized data mix
measured from the blended dataset the job built. Blend weights come from the recipe's per-domain mix; inside a
domain each source's train dataset is weighted by its token count (tasks/train/mix.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from model.job import DataBlend, TrainJob, TrainOutput, write
from model.presets import ModelSpec
from tasks.core.cachekey import file_hashes
from tasks.core.jobs import run_job, torchrun_cmd
from tasks.core.stage import Runtime, StageDef
from tasks.core.storage import StageDir
from tasks.core.typed import load
from tasks.tokenize.stage import TokenizeResult
from tasks.train.config import TrainSettings
from tasks.train.launchers import INFRA, render_pytorchjob, render_slurm, submit
from tasks.train.mix import RealizedMix, normalize_mix, realized, shares


@dataclass(frozen=True)
class StepMetrics:
    step: int
    loss: float
    lr: float
    grad_norm: float | None
    tokens_per_s: float
    step_time_s: float
    skipped: bool
    tflops_per_gpu: float
    max_rss_gib: float | None = None
    """Host peak RSS of rank 0."""
    mfu: float | None = None
    """Model FLOPs utilisation (GPU only)."""
    max_memory_gib: float | None = None
    """Peak GPU memory of rank 0 (GPU only)."""


@dataclass(frozen=True)
class TrainResult:
    checkpoint: str
    """Output-root-relative folder of the final checkpoint."""
    spec: ModelSpec
    final_loss: float
    steps: int
    num_params: int
    resumed_from: int | None
    world_size: int
    metrics: tuple[StepMetrics, ...]
    realized_mix: RealizedMix
    planned_mix: dict[str, float]
    job: str
    """Output-root-relative path of the job file the training processes read."""

    @property
    def tokens(self) -> int:
        """Tokens this run trained on."""
        return self.realized_mix.tokens


@dataclass(frozen=True)
class TrainInputs:
    tokenized: TokenizeResult
    init_from: TrainResult | None = None
    """Continue from this model's weights (specialization), with a fresh optimizer and LR re-warm-up."""


def metric_lines(path: Path) -> tuple[StepMetrics, ...]:
    """Per-step metrics of the job (resumed runs append; the last record of a step wins)."""
    by_step = {}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            by_step[rec["step"]] = load(StepMetrics, rec)
    return tuple(by_step[k] for k in sorted(by_step))


def job_for(cfg: TrainSettings, spec: ModelSpec, blend: DataBlend, tokenized: TokenizeResult, work: Path,
            init_from: str) -> TrainJob:
    t = cfg.train
    return TrainJob(
        spec=spec, tensor_parallel=t.tensor_parallel, pipeline_parallel=t.pipeline_parallel, steps=t.steps,
        micro_batch_size=t.micro_batch_size, global_batch_size=t.global_batch_size, lr=t.lr, min_lr=t.min_lr,
        warmup_steps=t.warmup_steps, weight_decay=t.weight_decay, clip_grad=t.clip_grad, save_interval=t.save_interval,
        attention=t.attention, recompute=t.recompute, distributed_optimizer=t.distributed_optimizer,
        overlap_grad_reduce=t.overlap_grad_reduce, bf16=cfg.model.bf16, bf16_on_cpu=False, seed=cfg.seed, data=blend,
        eod=tokenized.eod, tokenizer_vocab=tokenized.vocab_size, out_dir=str(work / "checkpoints"),
        init_from=init_from, metrics_path=str(work / "metrics.jsonl"), result_path=str(work / "result.json"),
        skip_final_checkpoint=False)


def _launch(cfg: TrainSettings, kind: str, job_path: Path, work: Path, rt: Runtime) -> None:
    t = cfg.train
    log = lambda line: rt.log(f"[{kind}] {line}")  # noqa: E731
    if t.launcher == "local":
        run_job(torchrun_cmd("model.train", str(job_path), t.nproc), log, t.timeout_s, log_path=str(work / "train.log"))
        return
    per_node = max(t.nproc // t.nodes, 1)  # the work dir must be on storage the cluster shares
    if t.launcher == "slurm":
        text = render_slurm(kind, str(job_path), str(work), t.nodes, per_node, t.slurm_time_limit, t.partition, t.account)
        rendered = work / f"{kind}.sbatch"
    else:
        text = render_pytorchjob(kind, str(job_path), str(work), t.nodes, per_node, t.image)
        rendered = work / f"{kind}.pytorchjob.yaml"
    rendered.write_text(text)
    submit(t.launcher, str(rendered), log, t.timeout_s)


def run(cfg: TrainSettings, inputs: TrainInputs, out: StageDir, rt: Runtime) -> TrainResult:
    """Run one training job to completion (resuming from the stage's checkpoints if present)."""
    kind = out.stage
    work = Path(out.local())
    work.mkdir(parents=True, exist_ok=True)
    tok = inputs.tokenized
    spec = cfg.model.spec(tok.vocab_size)
    plan = shares(tok.datasets, cfg.train.mix)
    local = {s.dataset.prefix: out.fetch_dataset(s.dataset.prefix) for s in plan}
    blend = DataBlend(prefixes=[local[s.dataset.prefix] for s in plan], weights=[s.weight for s in plan],
                      identity=tok.tokenizer.sha256)
    init_from = out.fetch(inputs.init_from.checkpoint) if inputs.init_from else ""
    job_path = work / f"{kind}.json"
    write(job_for(cfg, spec, blend, tok, work, init_from), job_path)
    _launch(cfg, kind, job_path, work, rt)
    output = TrainOutput.read(work / "result.json")
    out.upload()
    checkpoint = out.rel(*Path(output.checkpoint).relative_to(work).parts)
    return TrainResult(checkpoint=checkpoint, spec=spec, final_loss=output.final_loss, steps=output.steps,
                       num_params=output.num_params, resumed_from=output.resumed_from, world_size=output.world_size,
                       metrics=metric_lines(work / "metrics.jsonl"), realized_mix=realized(output, plan, local),
                       planned_mix=normalize_mix(cfg.train.mix), job=out.rel(job_path.name))


def mix_rows(result: TrainResult) -> tuple[dict, ...]:
    """Planned vs realized share per domain, for the `mix` contract."""
    planned, real = result.planned_mix, result.realized_mix.domain_share
    return tuple({"domain": d, "planned": planned.get(d, 0.0), "realized": real.get(d, 0.0),
                  "abs_diff": abs(planned.get(d, 0.0) - real.get(d, 0.0))} for d in sorted(set(planned) | set(real)))


def reads(cfg: TrainSettings, inputs: TrainInputs) -> list:
    """The job template a cluster launcher renders."""
    templates = {"slurm": INFRA / "slurm" / "train.sbatch.tmpl", "kubernetes": INFRA / "k8s" / "pytorchjob.yaml.tmpl"}
    return file_hashes([str(templates[cfg.train.launcher])]) if cfg.train.launcher in templates else []


STAGE = StageDef(name="pretrain", run=run, result=TrainResult, subprocess_modules=("model.train",), reads=reads)
