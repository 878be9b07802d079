from pathlib import Path

import pytest

from model.config import load_recipe, stable_hash

REPO_DEMO = "infra/recipes/demo.toml"


def test_demo_recipe_loads_with_sections():
    r = load_recipe(REPO_DEMO)
    assert r.specialize.mix == {"cybersecurity": 0.5, "general": 0.5}
    assert r.sources.ids and r.model.preset


def test_overrides_are_typed_and_applied():
    r = load_recipe(REPO_DEMO, ["pretrain.steps=30", "run.seed=9", "specialize.mix={cybersecurity=0.3, general=0.7}",
                                "curate.exact_dedup=false"])
    assert r.pretrain.steps == 30 and r.run.seed == 9
    assert r.specialize.mix == {"cybersecurity": 0.3, "general": 0.7}
    assert r.curate.exact_dedup is False


@pytest.mark.parametrize("override, message", [
    ("pretrain.steps=abc", "expected int"),
    ("nosuch.key=1", "unknown section"),
    ("pretrain.nosuch=1", "unknown key"),
    ("pretrain", "section.key=value"),
    ("pretrain.global_batch_size=7", "multiple of micro_batch_size"),
    ("pretrain.mix={general=-1.0}", "non-negative"),
    ("pretrain.attention=flash9", "sdpa or unfused"),
    ("specialize.recompute=some", "none, selective or full"),
])
def test_bad_overrides_raise_clear_errors(override, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(REPO_DEMO, [override])


def test_missing_recipe_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_recipe(tmp_path / "nope.toml")


def test_stable_hash_ignores_key_order_but_not_values():
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


RECIPES = sorted(p.name for p in (Path(__file__).resolve().parent.parent / "infra" / "recipes").glob("*.toml"))


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_shipped_recipe_loads_and_validates(recipe):
    r = load_recipe(f"infra/recipes/{recipe}")
    assert r.sources.ids and r.pretrain.steps > r.pretrain.warmup_steps
