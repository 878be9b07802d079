"""Recipe sections of the training stages: [model] (architecture), [pretrain] / [specialize] (one `TrainConfig`
each), [baseline] (a general-only comparison model), and the typed settings each training run is given.

The job a training process receives (model/job.py) is built from these sections and nothing else: no default is
restated downstream.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Literal

from model.presets import PRESETS, ModelSpec, pad_vocab

# Strict shapes for values pasted into Slurm scripts and Kubernetes manifests.
SLURM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.,+-]{0,127}$")
IMAGE = re.compile(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[0-9]{1,5})?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
                   r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$")
SLURM_TIME = re.compile(r"^(?:\d+-)?\d{1,3}(?::\d{2}){0,2}$")


@dataclass(frozen=True)
class ModelConfig:
    preset: str = "tiny"
    """Named size (model/presets.py): tiny, small, 125m, 350m, 1.3b."""
    num_layers: int = 0
    """Override the preset's layer count (0 keeps the preset)."""
    hidden_size: int = 0
    """Override the preset's hidden size (0 keeps the preset)."""
    num_attention_heads: int = 0
    """Override the preset's head count (0 keeps the preset)."""
    seq_length: int = 128
    """Training sequence length in tokens."""
    position_embedding: Literal["learned_absolute", "rope"] = "learned_absolute"
    """'learned_absolute' (GPT-2 style, exportable to HF) or 'rope'."""
    normalization: Literal["LayerNorm", "RMSNorm"] = "LayerNorm"
    """'LayerNorm' or 'RMSNorm'."""
    swiglu: bool = False
    """Gated SiLU MLP (SwiGLU) instead of GeLU."""
    tie_embeddings: bool = True
    """Share the input embedding with the output layer."""
    num_experts: int = 0
    """Mixture-of-experts MLP with this many experts per layer (0: dense)."""
    hidden_dropout: float = 0.0
    """Dropout after attention and MLP blocks (its RNG state is checkpointed per rank)."""
    attention_dropout: float = 0.0
    """Dropout on attention probabilities."""
    num_query_groups: int = 0
    """Key/value heads for grouped-query attention (0: one per attention head; must divide num_attention_heads)."""
    bf16: bool = True
    """Train in bf16 on GPU (CPU runs stay fp32)."""

    def spec(self, vocab_size: int) -> ModelSpec:
        """The architecture: the preset with this section's overrides (zero keeps the preset's value)."""
        if self.preset not in PRESETS:
            raise ValueError(f"[model].preset {self.preset!r} is unknown; choose one of {sorted(PRESETS)}")
        base = PRESETS[self.preset]
        sizes = {k: v for k, v in (("num_layers", self.num_layers), ("hidden_size", self.hidden_size),
                                   ("num_attention_heads", self.num_attention_heads)) if v}
        return replace(base, **sizes, seq_length=self.seq_length, position_embedding=self.position_embedding,
                       normalization=self.normalization, swiglu=self.swiglu, tie_embeddings=self.tie_embeddings,
                       num_experts=self.num_experts, hidden_dropout=self.hidden_dropout,
                       attention_dropout=self.attention_dropout, num_query_groups=self.num_query_groups,
                       vocab_size=pad_vocab(vocab_size))

    def check(self, where: str = "[model]") -> list[str]:
        if self.preset not in PRESETS:
            return [f"{where}.preset = {self.preset!r} is unknown; choose one of {sorted(PRESETS)}"]
        spec = self.spec(256)
        problems = []
        if spec.hidden_size % spec.num_attention_heads:
            problems.append(f"{where}: hidden_size {spec.hidden_size} is not divisible by num_attention_heads "
                            f"{spec.num_attention_heads}; change one of them")
        if self.seq_length < 8:
            problems.append(f"{where}.seq_length = {self.seq_length} is too short; use at least 8")
        for name in ("hidden_dropout", "attention_dropout"):
            if not 0 <= getattr(self, name) < 1:
                problems.append(f"{where}.{name} must be in [0, 1)")
        if self.num_experts < 0:
            problems.append(f"{where}.num_experts must be 0 (dense) or more")
        if self.num_query_groups < 0 or (self.num_query_groups and spec.num_attention_heads % self.num_query_groups):
            problems.append(f"{where}.num_query_groups = {self.num_query_groups} must divide num_attention_heads "
                            f"({spec.num_attention_heads}); 0 means one per head")
        try:
            spec.hf_layout()
        except ValueError as e:
            problems.append(f"{e} (the registered model is exported to Hugging Face)")
        return problems


@dataclass(frozen=True)
class TrainConfig:
    nproc: int = 1
    """Processes started by torchrun (= TP * PP * DP)."""
    tensor_parallel: int = 1
    """Tensor-parallel degree."""
    pipeline_parallel: int = 1
    """Pipeline-parallel degree."""
    steps: int = 20
    """Optimizer steps."""
    micro_batch_size: int = 4
    """Sequences per micro-batch per data-parallel rank."""
    global_batch_size: int = 8
    """Sequences per optimizer step across data-parallel ranks."""
    lr: float = 3e-3
    """Peak learning rate."""
    min_lr: float = 3e-4
    """Learning rate at the end of cosine decay."""
    warmup_steps: int = 5
    """Linear warm-up steps (re-warm-up when continuing from a checkpoint); a run shorter than this warms up over
    all but its last step."""
    weight_decay: float = 0.1
    """AdamW weight decay."""
    clip_grad: float = 1.0
    """Gradient-norm clipping threshold."""
    save_interval: int = 100
    """Checkpoint every N steps (0: not by step count). Checkpoints live outside the stage folder, keyed by the
    stage's hash: re-running the same recipe after a crash resumes from the newest complete one."""
    save_interval_s: float = 600.0
    """Also checkpoint when this many seconds of training passed since the last checkpoint (0: not by time)."""
    keep_checkpoints: int = 3
    """Keep the newest N complete checkpoints (0: keep all)."""
    hang_timeout_s: float = 1800.0
    """Kill the job, naming the stuck rank, when no training step completes for this long (0: no watchdog)."""
    stop_timeout_s: float = 120.0
    """After SIGTERM/SIGINT/SIGUSR1, time the job has to save a checkpoint and exit before it is killed."""
    max_resubmits: int = 3
    """Cluster launchers: resubmit a job ended by its time limit, a preemption or a node failure this many times
    (each resumes from its newest checkpoint)."""
    attention: Literal["sdpa", "unfused"] = "sdpa"
    """Core attention without Transformer Engine: 'sdpa' (torch's fused scaled_dot_product_attention: flash /
    memory-efficient kernels) or 'unfused' (megatron-core's DotProductAttention). TE's spec wins when installed."""
    distributed_optimizer: bool = False
    """Shard fp32 main weights and Adam moments across data-parallel ranks (megatron-core's distributed optimizer,
    ZeRO-1). Its checkpoints resume under another data-parallel size but not another TP/PP layout."""
    overlap_grad_reduce: bool = False
    """Overlap the data-parallel gradient all-reduce (reduce-scatter with the distributed optimizer) with the
    backward pass of the last micro-batch, bucket by bucket."""
    recompute: Literal["none", "selective", "full"] = "none"
    """Activation recomputation: 'none', 'selective' (core attention) or 'full' (whole layers, keeps only each
    layer's input): trades compute for activation memory on large models or long sequences."""
    mix: dict[str, float] = field(default_factory=lambda: {"general": 1.0})
    """Blend weights by domain (e.g. {cybersecurity = 0.5, general = 0.5}); normalised to sum 1."""
    timeout_s: int = 3600
    """Kill the training job after this many seconds."""
    launcher: Literal["local", "slurm", "kubernetes"] = "local"
    """'local' (torchrun here), 'slurm' (render + sbatch --wait) or 'kubernetes' (render + kubectl)."""
    nodes: int = 1
    """Nodes for cluster launchers."""
    image: str = ""
    """Container image for the Kubernetes launcher."""
    partition: str = ""
    """Slurm partition (empty: the cluster default)."""
    account: str = ""
    """Slurm account (empty: the user's default)."""
    time_limit: str = ""
    """Slurm time limit of one job ([D-]HH:MM:SS); empty: derived from timeout_s. A job ended by it is
    resubmitted (max_resubmits) and resumes from its checkpoint."""
    gpus_per_node: int = -1
    """Cluster launchers: GPUs to request per node (-1: one per training process; 0: a CPU job)."""
    cpus_per_task: int = 0
    """Slurm --cpus-per-task (0: the cluster default)."""

    @property
    def data_parallel(self) -> int:
        return self.nproc // (self.tensor_parallel * self.pipeline_parallel)

    @property
    def slurm_time_limit(self) -> str:
        if self.time_limit:
            return self.time_limit
        minutes = math.ceil(self.timeout_s / 60)
        return f"{minutes // 1440}-{minutes % 1440 // 60:02d}:{minutes % 60:02d}:00"

    def check(self, where: str) -> list[str]:
        p = []
        if min(self.nproc, self.tensor_parallel, self.pipeline_parallel, self.nodes, self.micro_batch_size,
               self.global_batch_size) < 1:
            p.append(f"{where}: nproc, tensor_parallel, pipeline_parallel, nodes, micro_batch_size and "
                     "global_batch_size must be at least 1")
            return p
        if self.nproc % (self.tensor_parallel * self.pipeline_parallel):
            p.append(f"{where}.nproc = {self.nproc} must be a multiple of tensor_parallel * pipeline_parallel "
                     f"({self.tensor_parallel * self.pipeline_parallel})")
        elif self.micro_batch_size < 1 or self.global_batch_size % (self.micro_batch_size * self.data_parallel):
            p.append(f"{where}.global_batch_size = {self.global_batch_size} must be a multiple of micro_batch_size * "
                     f"data-parallel size ({self.micro_batch_size} * {self.data_parallel})")
        if self.steps < 1:
            p.append(f"{where}.steps must be at least 1")
        if self.warmup_steps < 0:
            p.append(f"{where}.warmup_steps = {self.warmup_steps} must be >= 0")
        if self.lr <= 0 or not 0 <= self.min_lr <= self.lr:
            p.append(f"{where}: need lr > 0 and 0 <= min_lr <= lr (lr {self.lr}, min_lr {self.min_lr})")
        if min(self.save_interval, self.save_interval_s, self.keep_checkpoints, self.hang_timeout_s,
               self.max_resubmits) < 0 or self.timeout_s <= 0 or self.stop_timeout_s <= 0:
            p.append(f"{where}: save_interval, save_interval_s, keep_checkpoints, hang_timeout_s and max_resubmits "
                     "must be >= 0; timeout_s and stop_timeout_s > 0")
        if not self.mix or any(w < 0 for w in self.mix.values()) or sum(self.mix.values()) <= 0:
            p.append(f"{where}.mix needs non-negative weights with a positive sum, e.g. {{general = 1.0}}")
        if self.gpus_per_node < -1 or self.cpus_per_task < 0:
            p.append(f"{where}: gpus_per_node must be -1 (one per process), 0 (CPU) or more; cpus_per_task >= 0")
        if self.nproc % self.nodes:
            p.append(f"{where}.nproc = {self.nproc} must be a multiple of nodes ({self.nodes})")
        if self.launcher == "kubernetes" and not self.image:
            p.append(f"{where}.launcher = 'kubernetes' needs image = '<registry>/<keel image>:<tag>'")
        if self.image and not IMAGE.fullmatch(self.image):
            p.append(f"{where}.image = {self.image!r} is not a container image reference (registry/name:tag)")
        for name in ("partition", "account"):
            value = getattr(self, name)
            if value and not SLURM_NAME.fullmatch(value):
                p.append(f"{where}.{name} = {value!r} may hold only letters, digits and _ . , + -")
        if self.time_limit and not SLURM_TIME.fullmatch(self.time_limit):
            p.append(f"{where}.time_limit = {self.time_limit!r} is not a Slurm time ([D-]HH:MM:SS, e.g. 2-00:00:00)")
        return p


@dataclass(frozen=True)
class BaselineConfig:
    enabled: bool = False
    """Also train a general-only baseline with the same total tokens as pretrain + specialize."""
    preset: str = ""
    """Baseline model size preset (empty: the [model] preset)."""
    num_layers: int = 0
    """Override the baseline preset's layers (0 keeps it)."""
    hidden_size: int = 0
    """Override the baseline preset's hidden size (0 keeps it)."""
    num_attention_heads: int = 0
    """Override the baseline preset's heads (0 keeps it)."""
    global_batch_size: int = 16
    """Sequences per step; steps follow from the token budget."""
    micro_batch_size: int = 8
    """Sequences per micro-batch."""
    lr: float = 3e-3
    """Peak learning rate."""
    min_lr: float = 3e-4
    """Final learning rate."""
    warmup_steps: int = 10
    """Warm-up steps."""

    def check(self) -> list[str]:
        if self.enabled and min(self.global_batch_size, self.micro_batch_size) < 1:
            return ["[baseline]: global_batch_size and micro_batch_size must be at least 1"]
        return []


@dataclass(frozen=True)
class TrainSettings:
    """Everything one training run is given: its model, its schedule and the run's seed."""

    model: ModelConfig
    train: TrainConfig
    seed: int


def baseline_settings(model: ModelConfig, pretrain: TrainConfig, specialize: TrainConfig, baseline: BaselineConfig,
                      seed: int) -> TrainSettings:
    """The general-only baseline: [baseline]'s size and schedule over [pretrain]'s settings, trained on as many
    sequences as pretrain and specialize together (rounded up to whole steps)."""
    sequences = pretrain.steps * pretrain.global_batch_size + specialize.steps * specialize.global_batch_size
    return baseline_run(model, pretrain, baseline, math.ceil(sequences / baseline.global_batch_size),
                        {"general": 1.0}, seed)


def baseline_model(model: ModelConfig, baseline: BaselineConfig) -> ModelConfig:
    """[baseline]'s architecture: its preset and overrides over [model]'s other settings."""
    return replace(model, preset=baseline.preset or model.preset, num_layers=baseline.num_layers,
                   hidden_size=baseline.hidden_size, num_attention_heads=baseline.num_attention_heads)


def baseline_run(model: ModelConfig, pretrain: TrainConfig, baseline: BaselineConfig, steps: int,
                 mix: dict[str, float], seed: int) -> TrainSettings:
    """A from-scratch run of [baseline]'s model and schedule over [pretrain]'s other settings."""
    b = baseline
    sched = replace(pretrain, steps=steps, global_batch_size=b.global_batch_size, micro_batch_size=b.micro_batch_size,
                    lr=b.lr, min_lr=b.min_lr, warmup_steps=b.warmup_steps, mix=mix)
    return TrainSettings(model=baseline_model(model, baseline), train=sched, seed=seed)
