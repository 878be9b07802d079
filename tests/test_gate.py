"""Promotion gate decisions on constructed metric sets."""
import pytest

from tasks.evaluate import gate, heldout_groups
from tasks.plan import plan
from model.presets import ModelSpec


def _res(domain_ppl, general_ppl):
    return {"groups": {"cybersecurity": {"ppl": domain_ppl}, "general": {"ppl": general_ppl}}}


BASE = _res(100.0, 50.0)


@pytest.mark.parametrize("special, kwargs, promote, why", [
    (_res(80.0, 52.0), {}, True, None),
    (_res(99.0, 50.0), {"min_domain_improvement": 0.05}, False, "domain ppl gain 0.010 < required 0.05"),
    (_res(80.0, 70.0), {"max_general_regression": 0.2}, False, "general ppl regression 0.400 > allowed 0.2"),
    (_res(80.0, 50.0), {"data_ok": False}, False, "data did not pass"),
    (_res(80.0, 50.0), {"hap_rate": 0.5, "max_hap_rate": 0.1}, False, "HAP rate 0.500 of generations > ceiling 0.1"),
])
def test_gate(special, kwargs, promote, why):
    args = {"min_domain_improvement": 0.0, "max_general_regression": 0.1, "data_ok": True} | kwargs
    d = gate(BASE, special, "cybersecurity", **args)
    assert d["promote"] is promote
    assert (why is None and not d["reasons"]) or any(why in r for r in d["reasons"])
    assert d["domain_ppl_gain"] == pytest.approx((100 - special["groups"]["cybersecurity"]["ppl"]) / 100)


def test_heldout_groups_by_domain():
    ds = [{"domain": "general", "split": "test", "num_tokens": 5, "prefix": "a"},
          {"domain": "general", "split": "train", "num_tokens": 5, "prefix": "b"},
          {"domain": "cyber", "split": "test", "num_tokens": 0, "prefix": "c"}]
    assert heldout_groups(ds) == {"general": ["a"]}


def test_planner_numbers_on_known_inputs():
    spec = ModelSpec(num_layers=2, hidden_size=64, num_attention_heads=4, seq_length=63, vocab_size=512)
    n = spec.num_params()
    ds = [{"source_id": "g", "domain": "general", "split": "train", "num_tokens": 10_000, "num_words": 8_000},
          {"source_id": "c1", "domain": "cyber", "split": "train", "num_tokens": 3_000, "num_words": 2_000},
          {"source_id": "c2", "domain": "cyber", "split": "train", "num_tokens": 1_000, "num_words": 700},
          {"source_id": "g", "domain": "general", "split": "test", "num_tokens": 999, "num_words": 999}]
    p = plan(spec, ds, {"specialize": {"steps": 10, "global_batch_size": 8, "mix": {"cyber": 0.5, "general": 0.5}}},
             min_words_per_param=10, max_epochs=0.5)
    assert p["params"] == n and p["unique_train_tokens"] == 14_000 and p["unique_train_words"] == 10_700
    assert p["training_tokens"] == 10 * 8 * 64 and p["flops"] == 6.0 * n * 5120
    rows = {r["source_id"]: r for r in p["sources"]}
    assert rows["g"]["share"] == 0.5 and rows["c1"]["share"] == pytest.approx(0.375)
    assert rows["c2"]["epochs"] == pytest.approx(5120 * 0.125 / 1000)
    assert any("model too large" in w for w in p["warnings"])
    assert any("c2 would be repeated 0.6 epochs" in w for w in p["warnings"])
    assert not any("source g " in w for w in p["warnings"])
