"""Probe (run in its own process): for each Hugging Face layout keel exports to, a randomly initialised megatron-core
GPTModel and its export give the same logits; the folder loads with plain transformers. Prints one JSON object."""
import json
import sys
import tempfile
from dataclasses import replace

import torch

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else ".")

from model.gpt import build_model, init_distributed  # noqa: E402
from model.hf_export import export  # noqa: E402
from model.presets import ModelSpec  # noqa: E402

BASE = ModelSpec(num_layers=2, hidden_size=64, num_attention_heads=4, seq_length=32, vocab_size=256)
LLAMA = dict(position_embedding="rope", normalization="RMSNorm", swiglu=True)
CASES = {
    "gpt2": BASE,
    "gpt2_untied": replace(BASE, tie_embeddings=False),
    "llama_gqa_untied": replace(BASE, **LLAMA, num_query_groups=2, tie_embeddings=False),
    "llama_tied": replace(BASE, **LLAMA),
    "mixtral": replace(BASE, **LLAMA, num_experts=4, num_query_groups=2, tie_embeddings=False),
}

init_distributed(1, 1, 0)
out = {}
for name, spec in CASES.items():
    torch.manual_seed(1)
    model = build_model(spec, bf16=False, attention="sdpa", recompute="none").eval()
    with torch.no_grad():  # megatron zero-initialises some biases and norms: make every weight count
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    probe = torch.randint(0, spec.vocab_size, (2, spec.seq_length))
    with torch.no_grad():
        ours = model(probe, torch.arange(spec.seq_length).unsqueeze(0).expand_as(probe), None).float()
    with tempfile.TemporaryDirectory() as d:
        export(model.state_dict(), spec, 0, d)
        from transformers import AutoConfig, AutoModelForCausalLM

        hf = AutoModelForCausalLM.from_pretrained(d).eval()
        with torch.no_grad():
            theirs = hf(probe).logits
        out[name] = {"arch": AutoConfig.from_pretrained(d).architectures[0],
                     "max_abs_diff": float((ours - theirs).abs().max()), "scale": float(ours.abs().max())}
print(json.dumps(out))
