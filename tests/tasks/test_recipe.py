"""The recipe: typed sections, overrides, and validation of the whole recipe before any stage runs."""
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.core.config import RecipeError
from tasks.recipe import check_recipe, load_recipe
from tests.conftest import REPO

DEMO = str(REPO / "infra" / "recipes" / "demo.toml")


def test_demo_recipe_loads_with_sections():
    r = load_recipe(DEMO)
    assert r.specialize.mix == {"cybersecurity": 0.5, "general": 0.5}
    assert r.curate.gopher_quality.min_words == 20 and r.curate.language.min_score == 0.5
    assert r.domain == "cybersecurity"


def test_sections_are_frozen():
    r = load_recipe(DEMO)
    with pytest.raises(AttributeError):
        r.pretrain.steps = 3  # type: ignore[misc]
    assert isinstance(r.sources.ids, tuple)


def test_overrides_are_typed_and_applied():
    r = load_recipe(DEMO, ["pretrain.steps=30", "run.seed=9", "specialize.mix={cybersecurity=0.3, general=0.7}",
                           "curate.dedup.exact=false", "curate.gopher_quality.min_words=5"])
    assert r.pretrain.steps == 30 and r.run.seed == 9
    assert r.specialize.mix == {"cybersecurity": 0.3, "general": 0.7}
    assert r.curate.dedup.exact is False and r.curate.gopher_quality.min_words == 5


def test_flat_curate_keys_of_earlier_recipes_still_apply(tmp_path):
    p = tmp_path / "old.toml"
    text = re.sub(r"\[curate.gopher_quality\]\nmin_words = 20.*\n", "", Path(DEMO).read_text())
    p.write_text(text.replace("steps = [", "min_words = 11\nsteps = ["))
    assert load_recipe(p).curate.gopher_quality.min_words == 11


@pytest.mark.parametrize("override, message", [
    ("pretrain.steps=abc", r"\[pretrain\].steps: expected an integer"),
    ("nosuch.key=1", "unknown section 'nosuch'"),
    ("pretrain.stepz=1", r"unknown key 'stepz' \(did you mean 'steps'\?\)"),
    ("pretrain", "section.key=value"),
    ("pretrain.global_batch_size=7", "multiple of micro_batch_size"),
    ("pretrain.mix={general=-1.0}", "non-negative"),
    ("pretrain.attention=flash9", r"\[pretrain\].attention = 'flash9' is not allowed; choose one of \['sdpa', 'unfused'\]"),
    ("specialize.recompute=some", "choose one of \\['none', 'selective', 'full'\\]"),
    ("model.preset=huge", r"\[model\].preset = 'huge' is unknown"),
    ("model.position_embedding=rope", r"\[model\].position_embedding = 'rope'.*no Hugging Face layout"),
    ("model.swiglu=true", r"\[model\].swiglu = True.*no Hugging Face layout"),
    ("model.num_query_groups=2", r"\[model\].num_query_groups = 2 needs the Llama/Mixtral layout"),
    ("specialize.mix={finance=0.5, general=0.5}", r"\[specialize\].mix names domain 'finance', but no selected source"),
    ("specialize.mix={general=1.0}", "exactly one domain besides 'general'"),
    ("sources.ids=[\"shakespeare\", \"nosuch\"]", "unknown source 'nosuch'"),
    ("pretrain.launcher=slurm", None),
    ("pretrain.partition=\"gpu\\n#SBATCH --wrap=evil\"", r"\[pretrain\].partition .* may hold only"),
    ("pretrain.time_limit=forever", r"\[pretrain\].time_limit = 'forever' is not a Slurm time"),
    ("specialize.launcher=kubernetes", "needs image"),
    ("specialize.image=\"repo/img:1\\nbad: yes\"", "not a container image reference"),
    ("curate.steps=[\"normalize\", \"gopher_qualty\"]", "unknown rule 'gopher_qualty'"),
    ("tokenize.test_per_mille=0", "test_per_mille is 0"),
])
def test_bad_values_fail_naming_the_key(override, message):
    if message is None:
        assert load_recipe(DEMO, [override]).pretrain.launcher == "slurm"
        return
    with pytest.raises(RecipeError, match=message):
        load_recipe(DEMO, [override])


def test_every_problem_is_reported_at_once():
    with pytest.raises(RecipeError) as exc:
        load_recipe(DEMO, ["pretrain.stepz=1", "evaluate.max_sequences=x", "model.preset=huge"])
    assert len(exc.value.problems) == 2  # every unknown key and wrong type; semantic checks come after
    with pytest.raises(RecipeError) as exc:
        load_recipe(DEMO, ["model.preset=huge", "evaluate.max_sequences=0", "pretrain.warmup_steps=-1"])
    assert len(exc.value.problems) == 3


def test_missing_recipe_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_recipe(tmp_path / "nope.toml")


RECIPES = sorted(p.name for p in (REPO / "infra" / "recipes").glob("*.toml"))


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_shipped_recipe_loads_and_validates(recipe):
    r = load_recipe(REPO / "infra" / "recipes" / recipe)
    assert not check_recipe(r)


def test_a_bad_preset_fails_in_seconds_before_any_stage_folder(tmp_path):
    """`keel run` with an unknown preset: exit 2 naming `preset`, nothing written under the output root."""
    from tests.conftest import write_recipe

    recipe = write_recipe(tmp_path, tmp_path / "corpus")
    env = {"KEEL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "MLFLOW_DISABLE_TELEMETRY": "true"}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "run", "--recipe", str(recipe), "--set", "model.preset=tinyy"],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=60)
    took = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "[model].preset = 'tinyy' is unknown" in proc.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "corpus").exists()
    assert took < 30, took  # the recipe is refused before Prefect, Dask or a stage starts (a few seconds idle)
