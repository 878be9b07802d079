"""Recipe sections for the model and its training, evaluation and budget (split from model/config.py).

Pure Python like the rest of the recipe configuration; model/config.py re-exports every class here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

@dataclass
class ModelConfig:
    preset: str = "tiny"
    """Named size (model/presets.py): tiny, 125m, 350m, 1.3b."""
    num_layers: int = 0
    """Override the preset's layer count (0 keeps the preset)."""
    hidden_size: int = 0
    """Override the preset's hidden size (0 keeps the preset)."""
    num_attention_heads: int = 0
    """Override the preset's head count (0 keeps the preset)."""
    seq_length: int = 128
    """Training sequence length in tokens."""
    position_embedding: str = "learned_absolute"
    """'learned_absolute' (GPT-2 style, exportable to HF) or 'rope'."""
    normalization: str = "LayerNorm"
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
    bf16: bool = True
    """Train in bf16 on GPU (CPU runs stay fp32)."""


@dataclass
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
    """Linear warm-up steps (re-warm-up when continuing from a checkpoint)."""
    weight_decay: float = 0.1
    """AdamW weight decay."""
    clip_grad: float = 1.0
    """Gradient-norm clipping threshold."""
    save_interval: int = 0
    """Checkpoint every N steps (0: only at the end)."""
    attention: str = "sdpa"
    """Core attention without Transformer Engine: 'sdpa' (torch's fused scaled_dot_product_attention: flash /
    memory-efficient kernels) or 'unfused' (megatron-core's DotProductAttention). TE's spec wins when installed."""
    distributed_optimizer: bool = False
    """Shard fp32 main weights and Adam moments across data-parallel ranks (megatron-core's distributed optimizer,
    ZeRO-1). Its checkpoints resume under another data-parallel size but not another TP/PP layout."""
    overlap_grad_reduce: bool = False
    """Overlap the data-parallel gradient all-reduce (reduce-scatter with the distributed optimizer) with the
    backward pass of the last micro-batch, bucket by bucket."""
    recompute: str = "none"
    """Activation recomputation: 'none', 'selective' (core attention) or 'full' (whole layers, keeps only each
    layer's input): trades compute for activation memory on large models or long sequences."""
    mix: dict[str, float] = field(default_factory=lambda: {"general": 1.0})
    """Blend weights by domain (e.g. {cybersecurity = 0.5, general = 0.5})."""
    timeout_s: int = 3600
    """Kill the training job after this many seconds."""
    launcher: str = "local"
    """'local' (torchrun here), 'slurm' (render + sbatch --wait) or 'kubernetes' (render + kubectl)."""
    nodes: int = 1
    """Nodes for cluster launchers."""
    image: str = ""
    """Container image for the Kubernetes launcher."""
    partition: str = ""
    """Slurm partition (empty: the cluster default)."""


@dataclass
class EvaluateConfig:
    max_sequences: int = 64
    """Held-out sequences per split for perplexity."""
    min_domain_improvement: float = 0.0
    """Gate: specialized domain ppl must be at least this fraction below the base model's."""
    max_general_regression: float = 0.5
    """Gate: specialized general ppl may be at most this fraction above the base model's."""
    max_hap_rate: float = 0.1
    """Gate: at most this fraction of sample generations may reach the HAP threshold."""


@dataclass
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


@dataclass
class PlanConfig:
    min_words_per_param: float = 10.0
    """Warn (strict: refuse) below this many unique training words per parameter."""
    max_epochs: float = 4.0
    """Warn (strict: refuse) when a source would be repeated more epochs than this."""
    strict: bool = False
    """Refuse to train when the plan has warnings."""
