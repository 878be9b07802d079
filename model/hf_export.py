"""Export a megatron-core GPTModel (TP=1, PP=1 view) to a Hugging Face transformers model, in the layout its spec
maps onto (`ModelSpec.hf_layout`, checked when the recipe is loaded):

- GPT-2 (learned absolute positions, LayerNorm, GeLU) -> `GPT2LMHeadModel`: megatron's fused QKV, laid out per
  head ([heads, (q,k,v), head_dim, hidden]), re-ordered into GPT-2's [q | k | v] Conv1D (Linears transposed);
- Llama (RoPE, RMSNorm, SwiGLU, grouped-query attention, biases when megatron has them) -> `LlamaForCausalLM`:
  QKV split per key/value group, SwiGLU's fc1 split into gate and up;
- Mixtral (the same with mixture-of-experts MLPs) -> `MixtralForCausalLM`: the router as the gate, the experts'
  fc1/fc2 stacked into gate_up_proj/down_proj (megatron's top-k-then-softmax routing equals Mixtral's
  softmax-top-k-renormalise).

Tied or untied embeddings in each. Parity with megatron's logits is tested per layout (tests/model/test_export.py).
"""
from __future__ import annotations

from pathlib import Path

import torch

from model.presets import ModelSpec


def check_exportable(spec: ModelSpec) -> str:
    """The Hugging Face layout of this spec (ValueError naming the [model] keys when there is none)."""
    return spec.hf_layout()


def _split_qkv(w: torch.Tensor, spec: ModelSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """megatron's fused QKV (weight [.., h] or bias), laid out per key/value group as [q heads of the group, k, v],
    into q, k and v with heads in order (query head j uses key/value head j // heads-per-group, as in HF)."""
    nh, ng = spec.num_attention_heads, spec.kv_heads
    hd, per = spec.hidden_size // nh, nh // ng
    g = w.reshape(ng, per + 2, hd, *w.shape[1:])
    rest = w.shape[1:]
    return (g[:, :per].reshape(nh * hd, *rest), g[:, per].reshape(ng * hd, *rest), g[:, per + 1].reshape(ng * hd, *rest))


def to_gpt2_state_dict(sd: dict[str, torch.Tensor], spec: ModelSpec) -> dict[str, torch.Tensor]:
    out = {"transformer.wte.weight": sd["embedding.word_embeddings.weight"],
           "transformer.wpe.weight": sd["embedding.position_embeddings.weight"],
           "transformer.ln_f.weight": sd["decoder.final_layernorm.weight"],
           "transformer.ln_f.bias": sd["decoder.final_layernorm.bias"]}
    for i in range(spec.num_layers):
        p, q = f"decoder.layers.{i}.", f"transformer.h.{i}."
        out[q + "attn.c_attn.weight"] = torch.cat(_split_qkv(sd[p + "self_attention.linear_qkv.weight"], spec), 0).t()
        out[q + "attn.c_attn.bias"] = torch.cat(_split_qkv(sd[p + "self_attention.linear_qkv.bias"], spec), 0)
        out[q + "attn.c_proj.weight"] = sd[p + "self_attention.linear_proj.weight"].t()
        out[q + "attn.c_proj.bias"] = sd[p + "self_attention.linear_proj.bias"]
        out[q + "mlp.c_fc.weight"] = sd[p + "mlp.linear_fc1.weight"].t()
        out[q + "mlp.c_fc.bias"] = sd[p + "mlp.linear_fc1.bias"]
        out[q + "mlp.c_proj.weight"] = sd[p + "mlp.linear_fc2.weight"].t()
        out[q + "mlp.c_proj.bias"] = sd[p + "mlp.linear_fc2.bias"]
        for src, dst in (("input_layernorm", "ln_1"), ("pre_mlp_layernorm", "ln_2")):
            out[q + f"{dst}.weight"] = sd[p + f"{src}.weight"]
            out[q + f"{dst}.bias"] = sd[p + f"{src}.bias"]
    out["lm_head.weight"] = out["transformer.wte.weight"] if spec.tie_embeddings else sd["output_layer.weight"]
    return out


def to_llama_state_dict(sd: dict[str, torch.Tensor], spec: ModelSpec) -> dict[str, torch.Tensor]:
    """Llama (dense) or Mixtral (mixture of experts) names; SwiGLU's fused fc1 is [gate; up] in both."""
    out = {"model.embed_tokens.weight": sd["embedding.word_embeddings.weight"],
           "model.norm.weight": sd["decoder.final_layernorm.weight"],
           "lm_head.weight": sd["embedding.word_embeddings.weight"] if spec.tie_embeddings else sd["output_layer.weight"]}
    for i in range(spec.num_layers):
        p, q = f"decoder.layers.{i}.", f"model.layers.{i}."
        a = p + "self_attention."
        for name, t in zip("qkv", _split_qkv(sd[a + "linear_qkv.weight"], spec)):
            out[q + f"self_attn.{name}_proj.weight"] = t
        out[q + "self_attn.o_proj.weight"] = sd[a + "linear_proj.weight"]
        if a + "linear_qkv.bias" in sd:
            for name, t in zip("qkv", _split_qkv(sd[a + "linear_qkv.bias"], spec)):
                out[q + f"self_attn.{name}_proj.bias"] = t
            out[q + "self_attn.o_proj.bias"] = sd[a + "linear_proj.bias"]
        out[q + "input_layernorm.weight"] = sd[p + "input_layernorm.weight"]
        out[q + "post_attention_layernorm.weight"] = sd[p + "pre_mlp_layernorm.weight"]
        if spec.num_experts:
            e = p + "mlp.experts.local_experts."
            out[q + "mlp.gate.weight"] = sd[p + "mlp.router.weight"]
            out[q + "mlp.experts.gate_up_proj"] = torch.stack(
                [sd[f"{e}{j}.linear_fc1.weight"] for j in range(spec.num_experts)])
            out[q + "mlp.experts.down_proj"] = torch.stack(
                [sd[f"{e}{j}.linear_fc2.weight"] for j in range(spec.num_experts)])
            continue
        gate, up = sd[p + "mlp.linear_fc1.weight"].chunk(2, 0)
        out.update({q + "mlp.gate_proj.weight": gate, q + "mlp.up_proj.weight": up,
                    q + "mlp.down_proj.weight": sd[p + "mlp.linear_fc2.weight"]})
        if p + "mlp.linear_fc1.bias" in sd:
            gate_b, up_b = sd[p + "mlp.linear_fc1.bias"].chunk(2, 0)
            out.update({q + "mlp.gate_proj.bias": gate_b, q + "mlp.up_proj.bias": up_b,
                        q + "mlp.down_proj.bias": sd[p + "mlp.linear_fc2.bias"]})
    return out


def hf_config(spec: ModelSpec, eod: int, bias: bool, top_k: int = 2):
    """The transformers config of the spec's layout (`bias`: megatron's add_bias_linear)."""
    layout = spec.hf_layout()
    if layout == "gpt2":
        from transformers import GPT2Config

        return GPT2Config(vocab_size=spec.vocab_size, n_positions=spec.seq_length, n_embd=spec.hidden_size,
                          n_layer=spec.num_layers, n_head=spec.num_attention_heads, n_inner=spec.ffn,
                          activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                          layer_norm_epsilon=1e-5, tie_word_embeddings=spec.tie_embeddings, bos_token_id=eod,
                          eos_token_id=eod)
    common = dict(vocab_size=spec.vocab_size, hidden_size=spec.hidden_size, intermediate_size=spec.ffn,
                  num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_attention_heads,
                  num_key_value_heads=spec.kv_heads, hidden_act="silu", max_position_embeddings=spec.seq_length,
                  rms_norm_eps=1e-5, tie_word_embeddings=spec.tie_embeddings, bos_token_id=eod, eos_token_id=eod,
                  rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA}, attention_dropout=0.0)
    if layout == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(**common, attention_bias=bias, mlp_bias=bias)
    from transformers import MixtralConfig

    return MixtralConfig(**common, num_local_experts=spec.num_experts, num_experts_per_tok=top_k,
                         router_jitter_noise=0.0, output_router_logits=False)


ROPE_THETA = 10000.0
"""megatron-core GPTModel's default rotary base."""


def export(megatron_sd: dict, spec: ModelSpec, eod: int, out_dir: str | Path):
    """Write config.json + model.safetensors in the spec's layout (GPT-2, Llama or Mixtral); returns the loaded HF
    model (eval mode)."""
    from transformers import AutoModelForCausalLM

    layout = check_exportable(spec)
    sd = {k: v for k, v in megatron_sd.items() if isinstance(v, torch.Tensor)}
    bias = any(k.endswith("linear_qkv.bias") for k in sd)
    config = hf_config(spec, eod, bias, top_k=min(2, spec.num_experts) if spec.num_experts else 2)
    model = AutoModelForCausalLM.from_config(config)
    mapped = to_gpt2_state_dict(sd, spec) if layout == "gpt2" else to_llama_state_dict(sd, spec)
    mapped = {k: v.detach().float().contiguous().clone() for k, v in mapped.items()}
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    missing = [k for k in missing if not k.endswith(("attn.bias", "attn.masked_bias", "rotary_emb.inv_freq"))
               and not (spec.tie_embeddings and k == "lm_head.weight")]
    assert not missing and not unexpected, (missing, unexpected)
    if spec.tie_embeddings:
        model.tie_weights()
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
