"""Typed job files: what a training or evaluation process is asked to do, and what it answers.

tasks/train and tasks/evaluate write a `TrainJob` / `EvalJob` as JSON and start `model.train` / `model.evaluate`
on it; the process writes a `TrainOutput` / `EvalOutput`. Every field is required: the recipe's defaults live in
the recipe sections (tasks/train/config.py), never restated here or in the training code. Pure Python.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.presets import ModelSpec


def _fields(cls, data: dict, nested: dict[str, Any] | None = None):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown, missing = sorted(set(data) - names), sorted(names - set(data))
    if unknown or missing:
        raise ValueError(f"{cls.__name__}: unknown fields {unknown}, missing fields {missing}")
    for name, build in (nested or {}).items():
        data[name] = build(data[name])
    return cls(**data)


def write(obj, path: str | Path) -> str:
    Path(path).write_text(json.dumps(dataclasses.asdict(obj), indent=1))
    return str(path)


@dataclass(frozen=True)
class DataBlend:
    prefixes: list[str]
    """Local paths of the megatron indexed datasets (without .bin/.idx)."""
    weights: list[float]
    """Sampling weight per prefix (sums to 1)."""
    identity: str
    """Identifies the token ids (the tokenizer's sha256): part of megatron's dataset cache key."""


@dataclass(frozen=True)
class TrainJob:
    spec: ModelSpec
    tensor_parallel: int
    pipeline_parallel: int
    steps: int
    micro_batch_size: int
    global_batch_size: int
    lr: float
    min_lr: float
    warmup_steps: int
    weight_decay: float
    clip_grad: float
    save_interval: int
    """Checkpoint every N steps (0: not by step count)."""
    save_interval_s: float
    """Also checkpoint when this many seconds passed since the last one (0: not by time)."""
    keep_checkpoints: int
    """Keep the newest N complete checkpoints, delete older ones (0: keep all)."""
    attention: str
    recompute: str
    distributed_optimizer: bool
    overlap_grad_reduce: bool
    bf16: bool
    """bf16 on GPU (a CPU run stays fp32 unless bf16_on_cpu)."""
    bf16_on_cpu: bool
    """Tests only: exercise the bf16 path on CPU."""
    seed: int
    data: DataBlend
    eod: int
    tokenizer_vocab: int
    out_dir: str
    """Checkpoints folder (iter_NNNNNNN with their manifests + latest): outside the stage folder, so a redo of
    the stage resumes instead of starting over."""
    init_from: str
    """A checkpoint to start from (weights only), or ''."""
    init_from_manifest: str
    """The sha256 of that checkpoint's manifest, recorded when it was written ('' for none)."""
    metrics_path: str
    result_path: str
    heartbeat_dir: str
    """Each rank's heartbeat file (step, last alive) for the launcher's hang watchdog."""
    stopped_path: str
    """Written (instead of result_path) when a signal stopped the job after saving a checkpoint."""
    fence_path: str
    """The output-root lock's owner record ('' for none): checked before each checkpoint pointer moves."""
    fence_token: str
    """This run's token in that record: another token means another run took the root, and this job stops."""
    skip_final_checkpoint: bool
    """Benchmarks only: measure, keep nothing."""

    @classmethod
    def read(cls, path: str | Path) -> "TrainJob":
        data = json.loads(Path(path).read_text())
        return _fields(cls, data, {"spec": lambda d: _fields(ModelSpec, d), "data": lambda d: _fields(DataBlend, d)})


@dataclass(frozen=True)
class TrainOutput:
    final_loss: float
    steps: int
    checkpoint: str | None
    samples_per_prefix: dict[str, int]
    tokens_per_sample: int
    num_params: int
    resumed_from: int | None
    world_size: int

    @classmethod
    def read(cls, path: str | Path) -> "TrainOutput":
        return _fields(cls, json.loads(Path(path).read_text()))


@dataclass(frozen=True)
class EvalJob:
    spec: ModelSpec
    checkpoint: str
    checkpoint_manifest: str
    """The sha256 of the checkpoint's manifest, recorded when it was written."""
    tokenizer: str
    tokenizer_sha256: str
    groups: dict[str, list[str]]
    """Held-out dataset prefixes per group (a domain, or 'general')."""
    max_sequences: int
    """Windows scored per group, shared evenly between its sources and drawn (seeded) from anywhere in each."""
    eod: int
    hf_dir: str
    prompts: list[str]
    max_new_tokens: int
    seed: int
    result_path: str
    tasks_dir: str
    """Folder of lm-eval task YAMLs (downstream tasks on local JSONL); '' for none."""
    task_names: list[str]

    @classmethod
    def read(cls, path: str | Path) -> "EvalJob":
        return _fields(cls, json.loads(Path(path).read_text()), {"spec": lambda d: _fields(ModelSpec, d)})


@dataclass(frozen=True)
class GroupScore:
    loss: float | None
    ppl: float | None
    bpb: float | None
    tokens: int
    sequences: int


@dataclass(frozen=True)
class TaskScore:
    """A downstream task's accuracy (lm-evaluation-harness, zero-shot multiple choice) with its standard error."""
    acc: float
    acc_stderr: float
    items: int


@dataclass(frozen=True)
class Generation:
    prompt: str
    completion: str


@dataclass(frozen=True)
class EvalOutput:
    groups: dict[str, GroupScore]
    sources: dict[str, GroupScore]
    """Per held-out dataset (source and split, e.g. mitre_cwe_test)."""
    hf_dir: str
    max_abs_logit_diff: float
    generations: list[Generation]
    tasks: dict[str, TaskScore]

    @classmethod
    def read(cls, path: str | Path) -> "EvalOutput":
        return _fields(cls, json.loads(Path(path).read_text()), {
            "tasks": lambda g: {k: _fields(TaskScore, v) for k, v in g.items()},
            "groups": lambda g: {k: _fields(GroupScore, v) for k, v in g.items()},
            "sources": lambda g: {k: _fields(GroupScore, v) for k, v in g.items()},
            "generations": lambda gs: [_fields(Generation, x) for x in gs]})
