"""Export a megatron-core GPTModel (TP=1, PP=1 view) to a Hugging Face transformers model.

GPT-2-style specs (learned absolute positions, LayerNorm, GeLU, tied embeddings) map exactly onto
`GPT2LMHeadModel`: megatron's fused QKV is laid out per head ([heads, (q,k,v), head_dim, hidden]) and is
re-ordered into GPT-2's [q | k | v] Conv1D; every Linear is transposed into Conv1D layout.
"""
from __future__ import annotations

from pathlib import Path

import torch

from model.presets import ModelSpec


def check_exportable(spec: ModelSpec) -> None:
    unsupported = spec.gpt2_incompatible()
    if unsupported:
        raise ValueError(f"HF export supports GPT-2-style models only; this spec uses {unsupported}")


def to_gpt2_state_dict(sd: dict[str, torch.Tensor], spec: ModelSpec) -> dict[str, torch.Tensor]:
    h, nh = spec.hidden_size, spec.num_attention_heads
    hd = h // nh
    out = {"transformer.wte.weight": sd["embedding.word_embeddings.weight"],
           "transformer.wpe.weight": sd["embedding.position_embeddings.weight"],
           "transformer.ln_f.weight": sd["decoder.final_layernorm.weight"],
           "transformer.ln_f.bias": sd["decoder.final_layernorm.bias"]}
    for i in range(spec.num_layers):
        p, q = f"decoder.layers.{i}.", f"transformer.h.{i}."
        w = sd[p + "self_attention.linear_qkv.weight"].view(nh, 3, hd, h)
        b = sd[p + "self_attention.linear_qkv.bias"].view(nh, 3, hd)
        out[q + "attn.c_attn.weight"] = torch.cat([w[:, j].reshape(h, h) for j in range(3)], 0).t()
        out[q + "attn.c_attn.bias"] = torch.cat([b[:, j].reshape(h) for j in range(3)], 0)
        out[q + "attn.c_proj.weight"] = sd[p + "self_attention.linear_proj.weight"].t()
        out[q + "attn.c_proj.bias"] = sd[p + "self_attention.linear_proj.bias"]
        out[q + "mlp.c_fc.weight"] = sd[p + "mlp.linear_fc1.weight"].t()
        out[q + "mlp.c_fc.bias"] = sd[p + "mlp.linear_fc1.bias"]
        out[q + "mlp.c_proj.weight"] = sd[p + "mlp.linear_fc2.weight"].t()
        out[q + "mlp.c_proj.bias"] = sd[p + "mlp.linear_fc2.bias"]
        for src, dst in (("input_layernorm", "ln_1"), ("pre_mlp_layernorm", "ln_2")):
            out[q + f"{dst}.weight"] = sd[p + f"{src}.weight"]
            out[q + f"{dst}.bias"] = sd[p + f"{src}.bias"]
    out["lm_head.weight"] = out["transformer.wte.weight"]
    return {k: v.detach().float().contiguous().clone() for k, v in out.items()}


def gpt2_config(spec: ModelSpec, eod: int):
    from transformers import GPT2Config

    return GPT2Config(vocab_size=spec.vocab_size, n_positions=spec.seq_length, n_embd=spec.hidden_size,
                      n_layer=spec.num_layers, n_head=spec.num_attention_heads, n_inner=spec.ffn,
                      activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      layer_norm_epsilon=1e-5, tie_word_embeddings=True, bos_token_id=eod, eos_token_id=eod)


def export(megatron_sd: dict, spec: ModelSpec, eod: int, out_dir: str | Path):
    """Write config.json + model.safetensors; returns the loaded HF model (eval mode)."""
    from transformers import GPT2LMHeadModel

    check_exportable(spec)
    model = GPT2LMHeadModel(gpt2_config(spec, eod))
    missing, unexpected = model.load_state_dict(to_gpt2_state_dict(megatron_sd, spec), strict=False)
    missing = [k for k in missing if not k.endswith(("attn.bias", "attn.masked_bias"))]
    assert not missing and not unexpected, (missing, unexpected)
    model.eval()
    model.save_pretrained(str(out_dir), safe_serialization=True)
    return model


def save_tokenizer(tokenizer_json: str | Path, out_dir: str | Path, seq_length: int, eod_token: str) -> None:
    """Ship the tokenizer with the exported model: `AutoTokenizer.from_pretrained(out_dir)` then gives the ids the
    model was trained on (without it, transformers silently returns a near-empty tokenizer)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(str(tokenizer_json)), eos_token=eod_token,
                                  bos_token=eod_token, unk_token=eod_token, pad_token=eod_token,
                                  model_max_length=seq_length, clean_up_tokenization_spaces=False)
    tok.save_pretrained(str(out_dir))
