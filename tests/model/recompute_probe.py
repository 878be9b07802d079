"""Run in a fresh process (it applies the CPU compatibility layer): one forward/backward of a small GPTModel per
activation-recomputation mode, with dropout on. Prints one JSON object per mode: loss, gradient norm, and how many
times each layer and each core attention ran (recomputation runs them again during backward)."""
import json

import torch


def main() -> None:
    from model.gpt import RECOMPUTE, build_model, init_distributed
    from model.presets import ModelSpec

    init_distributed(1, 1, seed=0)
    spec = ModelSpec(num_layers=3, hidden_size=64, num_attention_heads=4, seq_length=32, vocab_size=128,
                     hidden_dropout=0.1, attention_dropout=0.1)
    tokens = torch.randint(0, 128, (2, 32), generator=torch.Generator().manual_seed(0))
    pos = torch.arange(32).expand(2, 32)
    out = {}
    for mode in RECOMPUTE:
        from megatron.core import tensor_parallel

        torch.manual_seed(1)
        tensor_parallel.model_parallel_cuda_manual_seed(1)
        model = build_model(spec, bf16=False, attention="sdpa", recompute=mode)
        calls = {"layer": 0, "core_attention": 0}
        for layer in model.decoder.layers:
            layer.register_forward_hook(lambda *a: calls.__setitem__("layer", calls["layer"] + 1))
            layer.self_attention.core_attention.register_forward_hook(
                lambda *a: calls.__setitem__("core_attention", calls["core_attention"] + 1))
        loss = model(tokens, pos, None, labels=tokens).float().mean()
        loss.backward()
        grad_norm = torch.sqrt(sum(p.grad.float().square().sum() for p in model.parameters() if p.grad is not None))
        out[mode] = {"loss": float(loss), "grad_norm": float(grad_norm), **calls}
    print(json.dumps(out))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
