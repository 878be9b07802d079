"""Training stages (pretrain, specialize, baseline): one definition run under three names.

The stage turns its settings into a typed `TrainJob` (model/job.py), runs `model.train` with torchrun here or as
a Slurm / Kubernetes job, and returns a `TrainResult`: checkpoint, per-step metrics, and the realized data mix
measured from the blended dataset the job built. Blend weights come from the recipe's per-domain mix; inside a
domain each source's train dataset is weighted by its token count (tasks/train/mix.py).

Progress survives any kill: the job's checkpoints, metrics and heartbeats live in `<root>/checkpoints/<stage>/<hash>/`,
outside the stage folder that a redo wipes, keyed by the stage's hash (a changed config never resumes another run),
so re-running the same recipe resumes from the newest complete checkpoint. A watchdog kills a job whose steps stop
completing; a job ended by its cluster time limit or a preemption is resubmitted and resumes.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from model.integrity import CHECKPOINT_MANIFEST, sha256_file
from model.job import DataBlend, TrainJob, TrainOutput, write
from model.lifecycle import HangWatch
from model.presets import ModelSpec
from tasks.core.jobs import STOP, JobFailed, JobStopped, run_job, torchrun_cmd
from tasks.core.stage import Runtime, StageDef
from tasks.core.storage import StageDir
from tasks.core.typed import load
from tasks.tokenize.stage import TokenizeResult
from tasks.train.config import TrainSettings
from tasks.train.launchers import RESUBMIT, render_pytorchjob, render_slurm, run_kubernetes, run_slurm
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
    checkpoint_manifest: str
    """The sha256 of that checkpoint's manifest (which holds every file's sha256): checked before it is loaded."""
    spec: ModelSpec
    final_loss: float
    steps: int
    num_params: int
    world_size: int
    metrics: tuple[StepMetrics, ...]
    realized_mix: RealizedMix
    planned_mix: dict[str, float]
    job: str
    """Output-root-relative path of the job file the training processes read."""
    resumed_from_step: int | None = None
    """The checkpoint step this run resumed from after an interruption (None: it ran from the start)."""
    attempts: int = 1
    """Jobs it took (more than one when a cluster job was resubmitted after a time limit or preemption)."""

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


def checkpoints_rel(out: StageDir) -> str:
    """Where a training stage keeps its progress: beside the stage folder, not in it, keyed by the stage hash."""
    return f"checkpoints/{out.stage}/{out.hash}"


def job_for(cfg: TrainSettings, spec: ModelSpec, blend: DataBlend, tokenized: TokenizeResult, ckpt: Path,
            work: Path, init_from: str, fence: tuple[str, str] = ("", ""), init_from_manifest: str = "") -> TrainJob:
    t = cfg.train
    return TrainJob(
        spec=spec, tensor_parallel=t.tensor_parallel, pipeline_parallel=t.pipeline_parallel, steps=t.steps,
        micro_batch_size=t.micro_batch_size, global_batch_size=t.global_batch_size, lr=t.lr, min_lr=t.min_lr,
        warmup_steps=min(t.warmup_steps, t.steps - 1), weight_decay=t.weight_decay, clip_grad=t.clip_grad, save_interval=t.save_interval,
        save_interval_s=t.save_interval_s, keep_checkpoints=t.keep_checkpoints, attention=t.attention,
        recompute=t.recompute, distributed_optimizer=t.distributed_optimizer, overlap_grad_reduce=t.overlap_grad_reduce,
        bf16=cfg.model.bf16, bf16_on_cpu=False, seed=cfg.seed, data=blend, eod=tokenized.eod,
        tokenizer_vocab=tokenized.vocab_size, out_dir=str(ckpt), init_from=init_from,
        init_from_manifest=init_from_manifest if init_from else "",
        metrics_path=str(ckpt / "metrics.jsonl"), result_path=str(work / "result.json"),
        heartbeat_dir=str(ckpt / "heartbeat"), stopped_path=str(ckpt / "stopped.json"), fence_path=fence[0],
        fence_token=fence[1], skip_final_checkpoint=False)


def _stopped(job: TrainJob) -> str:
    p = Path(job.stopped_path)
    if not p.is_file():
        return "no checkpoint was saved on the way out"
    s = json.loads(p.read_text())
    return f"stopped by {s['signal']} after step {s['step']} with a checkpoint saved; re-run to resume"


def _launch(cfg: TrainSettings, kind: str, job: TrainJob, job_path: Path, work: Path, rt: Runtime) -> int:
    """Run the job to completion; returns how many cluster jobs it took."""
    t = cfg.train
    log = lambda line: rt.log(f"[{kind}] {line}")  # noqa: E731

    def watchdog():
        return HangWatch(job.heartbeat_dir, t.nproc, t.hang_timeout_s) if t.hang_timeout_s else None

    if t.launcher == "local":
        try:
            run_job(torchrun_cmd("model.train", str(job_path), t.nproc, t.stop_timeout_s), log, t.timeout_s,
                    log_path=str(work / "train.log"), watchdog=watchdog(), stop_timeout_s=t.stop_timeout_s + 15)
        except JobStopped as exc:
            raise JobStopped(f"{kind}: {_stopped(job)} ({exc})", exc.signum) from None
        return 1
    per_node = max(t.nproc // t.nodes, 1)  # the work dir must be on storage the cluster shares
    deadline = time.monotonic() + t.timeout_s
    for attempt in range(1, t.max_resubmits + 2):
        for stale in (Path(job.stopped_path), *Path(job.heartbeat_dir).glob("rank-*.json")):
            stale.unlink(missing_ok=True)
        name = f"keel-{kind}-{job_path.parent.name[:8]}-{attempt}-{uuid.uuid4().hex[:6]}"  # unique per attempt
        try:
            if t.launcher == "slurm":
                script = work / f"{name}.sbatch"
                script.write_text(render_slurm(
                    kind, str(job_path), str(work), t.nodes, per_node, t.slurm_time_limit, t.partition, t.account,
                    python=sys.executable, job_name=name, gpus_per_node=None if t.gpus_per_node < 0 else t.gpus_per_node,
                    cpus_per_task=t.cpus_per_task, signal_lead_s=t.stop_timeout_s, stop_timeout_s=t.stop_timeout_s))
                outcome = run_slurm(script, log, deadline, watchdog(), t.stop_timeout_s + 15)
            else:
                manifest = work / f"{name}.yaml"
                manifest.write_text(render_pytorchjob(kind, str(job_path), str(work), t.nodes, per_node, t.image, name,
                                                      stop_timeout_s=int(t.stop_timeout_s)))
                outcome = run_kubernetes(manifest, name, log, deadline, watchdog(), t.stop_timeout_s + 45)
        except JobStopped as exc:
            raise JobStopped(f"{kind}: {_stopped(job)} ({exc})", exc.signum) from None
        if Path(job.result_path).is_file():
            return attempt
        if STOP.is_set():
            raise JobStopped(f"{kind}: {_stopped(job)}")
        # a time limit (the job saved on Slurm's warning signal and ended; torchrun exits non-zero after a signal,
        # so Slurm says FAILED) or a preemption: resubmit; a job cancelled by someone (CANCELLED) is not
        if outcome.state in RESUBMIT or (outcome.state != "CANCELLED" and Path(job.stopped_path).is_file()):
            log(f"job {outcome.job_id} ended {outcome.state} ({_stopped(job)}): resubmitting "
                f"({attempt}/{t.max_resubmits} resubmissions used)")
            continue
        raise JobFailed(f"{kind}: {t.launcher} job {outcome.job_id} ended {outcome.state} (exit {outcome.exit_code or '?'}) "
                        f"without a result; see {work}{_log_tail(work / f'slurm-{outcome.job_id}.log')}")
    raise JobFailed(f"{kind}: still unfinished after {t.max_resubmits} resubmissions (max_resubmits); the newest "
                    f"checkpoint is kept: re-run to continue")


def _log_tail(path: Path, lines: int = 8) -> str:
    """The end of a job's log, for the error that says the job failed."""
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "; the log ends:\n" + "\n".join(line[:300] for line in tail) if tail else ""


def run(cfg: TrainSettings, inputs: TrainInputs, out: StageDir, rt: Runtime) -> TrainResult:
    """Run one training job to completion, resuming from this stage's newest complete checkpoint if any."""
    kind = out.stage
    work = Path(out.local())
    work.mkdir(parents=True, exist_ok=True)
    ckpt_rel = checkpoints_rel(out)
    ckpt = Path(out.local(ckpt_rel))
    ckpt.mkdir(parents=True, exist_ok=True)
    tok = inputs.tokenized
    spec = cfg.model.spec(tok.vocab_size)
    plan = shares(tok.datasets, cfg.train.mix)
    local = {s.dataset.prefix: out.fetch_dataset(s.dataset.prefix) for s in plan}
    blend = DataBlend(prefixes=[local[s.dataset.prefix] for s in plan], weights=[s.weight for s in plan],
                      identity=tok.tokenizer.sha256)
    init_from = out.fetch(inputs.init_from.checkpoint) if inputs.init_from else ""
    job_path = work / f"{kind}.json"
    job = job_for(cfg, spec, blend, tok, ckpt, work, init_from, rt.fence,
                  inputs.init_from.checkpoint_manifest if inputs.init_from else "")
    write(job, job_path)
    attempts = _launch(cfg, kind, job, job_path, work, rt)
    output = TrainOutput.read(work / "result.json")
    shutil.copy(job.metrics_path, work / "metrics.jsonl")
    checkpoint = f"{ckpt_rel}/{Path(output.checkpoint).name}"
    out.upload()
    out.upload(checkpoint)
    return TrainResult(checkpoint=checkpoint, checkpoint_manifest=sha256_file(Path(output.checkpoint) / CHECKPOINT_MANIFEST),
                       spec=spec, final_loss=output.final_loss, steps=output.steps,
                       num_params=output.num_params, world_size=output.world_size,
                       metrics=metric_lines(work / "metrics.jsonl"), realized_mix=realized(output, plan, local),
                       planned_mix=normalize_mix(cfg.train.mix), job=out.rel(job_path.name),
                       resumed_from_step=output.resumed_from, attempts=attempts)


def mix_rows(result: TrainResult) -> tuple[dict, ...]:
    """Planned vs realized share per domain, for the `mix` contract."""
    planned, real = result.planned_mix, result.realized_mix.domain_share
    return tuple({"domain": d, "planned": planned.get(d, 0.0), "realized": real.get(d, 0.0),
                  "abs_diff": abs(planned.get(d, 0.0) - real.get(d, 0.0))} for d in sorted(set(planned) | set(real)))


OPERATIONAL = dict(timeout_s=0, launcher="local", nodes=1, image="", partition="", account="", time_limit="",
                   hang_timeout_s=0.0, stop_timeout_s=1.0, max_resubmits=0, save_interval=0, save_interval_s=0.0,
                   keep_checkpoints=0, gpus_per_node=-1, cpus_per_task=0)
"""Where and how a job runs, when it checkpoints and how long it may take: not what it computes."""


def shaping(cfg: TrainSettings) -> TrainSettings:
    """The settings that decide the trained weights; changing the others (a longer timeout after one was hit, a
    cluster launcher, the checkpoint cadence) resumes the same checkpoints instead of starting anew."""
    return replace(cfg, train=replace(cfg.train, **OPERATIONAL))


STAGE = StageDef(name="pretrain", run=run, result=TrainResult, subprocess_modules=("model.train",),
                 outputs_beside=lambda result: (result.checkpoint,), key_config=shaping)
