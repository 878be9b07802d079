"""Hugging Face export of every architecture keel trains: GPT-2, Llama (RoPE, SwiGLU, RMSNorm, grouped-query
attention, untied) and Mixtral (mixture of experts) layouts, with logits equal to megatron-core's; the layout is
chosen and checked when the recipe is loaded."""
from dataclasses import replace

import pytest

from model.presets import ModelSpec
from tests.model.test_layers import _probe


def test_export_matches_megatron_logits_for_every_layout():
    res = _probe("export_parity.py")
    assert {k: v["arch"] for k, v in res.items()} == {
        "gpt2": "GPT2LMHeadModel", "gpt2_untied": "GPT2LMHeadModel", "llama_gqa_untied": "LlamaForCausalLM",
        "llama_tied": "LlamaForCausalLM", "mixtral": "MixtralForCausalLM"}
    for name, r in res.items():
        assert r["max_abs_diff"] <= 1e-4 and r["scale"] > 0.01, (name, r)


def test_layout_is_chosen_from_the_spec_and_impossible_combinations_are_refused():
    base = ModelSpec(num_layers=1, hidden_size=64, num_attention_heads=4)
    llama = replace(base, position_embedding="rope", normalization="RMSNorm", swiglu=True)
    assert base.hf_layout() == "gpt2" and llama.hf_layout() == "llama"
    assert replace(llama, num_experts=4).hf_layout() == "mixtral"
    with pytest.raises(ValueError, match="rope"):
        replace(base, position_embedding="rope").hf_layout()
    with pytest.raises(ValueError, match="num_query_groups"):
        replace(base, num_query_groups=2).hf_layout()


def test_a_recipe_without_an_export_layout_fails_at_load():
    from tasks.recipe import RecipeError, load_recipe
    from tests.tasks.test_recipe import DEMO

    with pytest.raises(RecipeError, match="no Hugging Face layout"):
        load_recipe(DEMO, ["model.position_embedding=rope"])
    r = load_recipe(DEMO, ["model.position_embedding=rope", "model.normalization=RMSNorm", "model.swiglu=true",
                           "model.num_query_groups=2", "model.tie_embeddings=false"])
    assert r.model.spec(4096).hf_layout() == "llama"
    with pytest.raises(RecipeError, match="must divide"):
        load_recipe(DEMO, ["model.position_embedding=rope", "model.normalization=RMSNorm", "model.swiglu=true",
                           "model.num_query_groups=3"])
