"""Core attention through PyTorch's fused scaled_dot_product_attention for megatron-core's local layer spec.

megatron-core's local spec computes attention with `DotProductAttention`: it materialises the [b, n, s, s] score
matrix (baddbmm), runs the masked softmax in fp32 (the fused CUDA softmax needs Megatron's compiled kernels) and
a second bmm. At s = 2048 that is gigabytes per layer and most of a step's memory traffic. `SDPAttention` keeps the
module's interface and state (it *is* a DotProductAttention) and hands the same computation to
`torch.nn.functional.scaled_dot_product_attention`, which dispatches to FlashAttention-2 / memory-efficient
kernels on GPU and a fused flash kernel on CPU. Transformer Engine's spec, when TE is installed, takes precedence.

Anything the fused path does not cover (packed sequences, attention bias, learnable softmax offsets, sliding
windows, a causal query shorter than its keys) falls back to the parent's implementation.
"""
from __future__ import annotations

import torch
from megatron.core import tensor_parallel
from megatron.core.transformer.dot_product_attention import DotProductAttention
from megatron.core.transformer.enums import AttnMaskType

BACKENDS = ("sdpa", "unfused")


class SDPAttention(DotProductAttention):
    """DotProductAttention computed by torch's scaled_dot_product_attention (same inputs, outputs and RNG use)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The parent divides the scale by the layer number when query-key layer scaling is on and multiplies it
        # back inside its fp32 softmax; the fused kernel needs the net scale.
        coeff = self.layer_number if self.config.apply_query_key_layer_scaling else 1
        self.sdpa_scale = self.softmax_scale * coeff

    def _fused_path(self, sq: int, sk: int, mask_type, attention_mask, attention_bias, packed_seq_params) -> bool:
        if packed_seq_params is not None or attention_bias is not None or self.softmax_offset is not None:
            return False
        if self.scale_mask_softmax.window_size is not None:
            return False
        if mask_type == AttnMaskType.causal and attention_mask is None and sq > 1 and sq != sk:
            return False  # SDPA's is_causal aligns top-left; keep megatron's semantics
        return True

    def forward(self, query, key, value, attention_mask, attn_mask_type=None, attention_bias=None,
                packed_seq_params=None):
        mask_type = attn_mask_type if attn_mask_type is not None else self.attn_mask_type
        sq, b = query.size(0), query.size(1)
        if not self._fused_path(sq, key.size(0), mask_type, attention_mask, attention_bias, packed_seq_params):
            return super().forward(query, key, value, attention_mask, attn_mask_type, attention_bias,
                                   packed_seq_params)
        # [s, b, n, d] -> [b, n, s, d]
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, key, value))
        groups = q.size(1) // k.size(1)
        if groups > 1:  # grouped-query attention: repeat the key/value heads, as the parent does
            k = k.repeat_interleave(groups, dim=1)
            v = v.repeat_interleave(groups, dim=1)
        causal = mask_type == AttnMaskType.causal and attention_mask is None and sq > 1
        # megatron masks are True where attention is *not* allowed; SDPA's boolean masks are the opposite
        mask = None if attention_mask is None else ~attention_mask
        p = self.attention_dropout.p if self.training else 0.0

        def attend():
            return torch.nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal, scale=self.sdpa_scale)

        if p > 0 and not self.config.sequence_parallel:
            with tensor_parallel.get_cuda_rng_tracker().fork():
                context = attend()
        else:
            context = attend()
        # [b, n, s, d] -> [s, b, n * d]
        return context.permute(2, 0, 1, 3).reshape(sq, b, self.hidden_size_per_partition)


def use_backend(layer_spec, backend: str):
    """Put the chosen core attention into a local layer spec (in place; returns it)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "sdpa":
        layer_spec.submodules.self_attention.submodules.core_attention = SDPAttention
    return layer_spec
