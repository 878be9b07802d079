"""Model size presets and the typed architecture spec that training, export and serving share.

`ModelSpec` is *what* the network is (sizes and options); how it is sharded (TP/PP/DP) lives in the training
config. Presets follow GPT-3 paper sizes (125M, 350M, 1.3B) plus a CPU-sized `tiny`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    seq_length: int = 128
    vocab_size: int = 0
    """Padded vocabulary size (set from the tokenizer at training time)."""
    ffn_hidden_size: int = 0
    """0 means 4 * hidden_size."""
    position_embedding: str = "learned_absolute"
    """'learned_absolute' (GPT-2 style) or 'rope'."""
    normalization: str = "LayerNorm"
    """'LayerNorm' or 'RMSNorm'."""
    swiglu: bool = False
    """Gated SiLU MLP instead of GeLU."""
    tie_embeddings: bool = True
    """Share input embedding and output layer weights."""
    num_experts: int = 0
    """Mixture-of-experts layers with this many experts (0: dense)."""
    hidden_dropout: float = 0.0
    """Dropout after attention and MLP blocks (training only)."""
    attention_dropout: float = 0.0
    """Dropout on attention probabilities (training only)."""
    num_query_groups: int = 0
    """Key/value heads (grouped-query attention); 0 means one per attention head."""

    @property
    def kv_heads(self) -> int:
        return self.num_query_groups or self.num_attention_heads

    @property
    def ffn(self) -> int:
        return self.ffn_hidden_size or 4 * self.hidden_size

    def num_params(self) -> int:
        """Parameter count (embeddings included, biases and norms included)."""
        h, L, v = self.hidden_size, self.num_layers, self.vocab_size
        mlp_in = self.ffn * (2 if self.swiglu else 1)
        experts = max(self.num_experts, 1)
        per_layer = 4 * h * h + 4 * h + experts * (h * mlp_in + mlp_in + self.ffn * h + h) + 4 * h
        emb = v * h + (self.seq_length * h if self.position_embedding == "learned_absolute" else 0)
        out = 0 if self.tie_embeddings else v * h
        return L * per_layer + emb + out + 2 * h

    def hf_layout(self) -> str:
        """The Hugging Face architecture the model is exported to: 'gpt2' (learned positions, LayerNorm, GeLU,
        dense, one key/value head per head), 'llama' (RoPE, RMSNorm, SwiGLU, dense, any grouping) or 'mixtral' (the
        same with mixture-of-experts MLPs); tied or untied embeddings in each. Raises ValueError naming the
        [model] keys of a combination none of them expresses."""
        gpt2 = {"position_embedding": "learned_absolute", "normalization": "LayerNorm", "swiglu": False}
        llama = {"position_embedding": "rope", "normalization": "RMSNorm", "swiglu": True}
        mine = {k: getattr(self, k) for k in gpt2}
        if mine == gpt2 and not self.num_experts and self.kv_heads == self.num_attention_heads:
            return "gpt2"
        if mine == llama:
            return "mixtral" if self.num_experts else "llama"
        if mine == gpt2:
            why = "num_experts" if self.num_experts else "num_query_groups"
            raise ValueError(f"[model].{why} = {getattr(self, why)} needs the Llama/Mixtral layout: set "
                             "position_embedding = 'rope', normalization = 'RMSNorm' and swiglu = true")
        keys = ", ".join(f"[model].{k} = {v!r}" for k, v in mine.items())
        raise ValueError(f"{keys}: no Hugging Face layout keel exports to has this combination; use "
                         "learned_absolute + LayerNorm + GeLU (GPT-2) or rope + RMSNorm + swiglu (Llama; Mixtral with "
                         "num_experts)")

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6N plus attention (Megatron-LM/PaLM accounting)."""
        return 6.0 * self.num_params() + 12.0 * self.num_layers * self.hidden_size * self.seq_length


PRESETS: dict[str, ModelSpec] = {
    "tiny": ModelSpec(num_layers=2, hidden_size=64, num_attention_heads=4),
    "small": ModelSpec(num_layers=4, hidden_size=128, num_attention_heads=4),
    "125m": ModelSpec(num_layers=12, hidden_size=768, num_attention_heads=12, seq_length=2048),
    "350m": ModelSpec(num_layers=24, hidden_size=1024, num_attention_heads=16, seq_length=2048),
    "1.3b": ModelSpec(num_layers=24, hidden_size=2048, num_attention_heads=16, seq_length=2048),
}


def pad_vocab(vocab_size: int, multiple: int = 128) -> int:
    """Pad the vocabulary so it divides evenly across tensor-parallel ranks (Megatron pads to 128 * TP)."""
    return ((vocab_size + multiple - 1) // multiple) * multiple
