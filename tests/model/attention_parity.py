"""Run in a fresh process (it applies the CPU compatibility layer): SDPAttention vs megatron-core's
DotProductAttention on the same inputs. Prints one JSON object of max abs differences of outputs and input grads."""
import json
import sys

import torch


def main() -> None:
    from megatron.core.transformer.dot_product_attention import DotProductAttention
    from megatron.core.transformer.enums import AttnMaskType

    from model.attention import SDPAttention
    from model.gpt import init_distributed, transformer_config
    from model.presets import ModelSpec

    init_distributed(1, 1, seed=0)
    out = {}
    for name, heads, groups, explicit_mask, scaling in (("causal", 4, 4, False, False), ("gqa", 4, 2, False, False),
                                                         ("mask", 4, 4, True, False), ("qk_scaling", 4, 4, False, True)):
        spec = ModelSpec(num_layers=2, hidden_size=64, num_attention_heads=heads, seq_length=48, vocab_size=128)
        cfg = transformer_config(spec)
        cfg.num_query_groups = groups
        cfg.apply_query_key_layer_scaling = scaling
        s, b, d = 48, 3, 64 // heads
        g = torch.Generator().manual_seed(1)
        q = torch.randn(s, b, heads, d, generator=g)
        k = torch.randn(s, b, groups, d, generator=g)
        v = torch.randn(s, b, groups, d, generator=g)
        mask = None
        if explicit_mask:  # causal plus padding of the last 5 keys (True = masked out, megatron convention)
            mask = torch.triu(torch.ones(s, s, dtype=torch.bool), 1).expand(b, 1, s, s).clone()
            mask[..., -5:] = True
            mask[..., -5:, :] = torch.triu(torch.ones(5, s, dtype=torch.bool), s - 5 + 1)
        results = []
        for cls in (DotProductAttention, SDPAttention):
            att = cls(cfg, layer_number=2, attn_mask_type=AttnMaskType.causal, attention_type="self")
            qq, kk, vv = (t.clone().requires_grad_(True) for t in (q, k, v))
            o = att(qq, kk, vv, mask)
            o.square().sum().backward()
            results.append((o.detach(), qq.grad, kk.grad, vv.grad))
        (o1, *g1), (o2, *g2) = results
        out[name] = {"shape_equal": list(o1.shape) == list(o2.shape), "out": float((o1 - o2).abs().max()),
                     "grad": max(float((a - c).abs().max()) for a, c in zip(g1, g2))}
    print(json.dumps(out))
    sys.stdout.flush()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
