"""Honest caching through the real flow: an edit to the code a stage runs re-runs that stage and what follows,
and nothing upstream; no edit re-runs nothing. Edits go to a copy of the packages the cache key reads."""
import shutil

import pytest

from flows.pipeline import keel_pipeline
from tasks.core import cachekey
from tests.conftest import REPO, write_recipe

pytestmark = pytest.mark.slow

DATA = ["legal", "ingest", "contract_raw", "curate", "contract_curated", "tokenize", "contract_tokenized"]
TRAINED = ["pretrain", "specialize", "evaluate", "register"]  # contract_mix re-checks only if the realized mix moved


def _touch(tree, rel: str) -> None:
    with open(tree / rel, "a") as f:
        f.write("\n# edited\n")


def test_code_edits_rerun_exactly_the_stages_that_run_that_code(tmp_path, demo_corpus, prefect_harness, monkeypatch):
    tree = tmp_path / "tree"
    for pkg in cachekey.PACKAGES:
        shutil.copytree(REPO / pkg, tree / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cachekey, "REPO", tree)
    recipe = write_recipe(tmp_path, demo_corpus, ids=["python_docs", "mitre_attack"])
    sets = ['curate.steps=["normalize", "language", "gopher_repetition", "hap"]', "tokenize.test_per_mille=150"]
    first = keel_pipeline(str(recipe), sets)
    assert set(first["stage_status"].values()) == {"completed"}

    again = keel_pipeline(str(recipe), sets)  # nothing touched: nothing re-runs
    assert set(again["stage_status"].values()) == {"cached"} and again["stage_hashes"] == first["stage_hashes"]

    _touch(tree, "model/presets.py")  # the model (tests/tasks/core/test_cachekey.py: every model/ file): pretrain onward
    res = keel_pipeline(str(recipe), sets)
    assert all(res["stage_status"][s] == "cached" for s in DATA), res["stage_status"]
    assert all(res["stage_status"][s] == "completed" for s in TRAINED), res["stage_status"]
    assert res["stage_status"]["contract_mix"] == "cached"  # the same realized mix: nothing new to check
    assert res["stage_hashes"]["tokenize"] == first["stage_hashes"]["tokenize"]
    assert res["stage_hashes"]["pretrain"] != first["stage_hashes"]["pretrain"]

    _touch(tree, "tasks/curate/rules/gopher_repetition.py")  # a curation rule: curate onward, ingest cached
    res = keel_pipeline(str(recipe), sets, until="tokenize")
    assert [res["stage_status"][s] for s in DATA] == ["cached", "cached", "cached", "completed", "completed",
                                                       "completed", "cached"]  # same datasets: same table to check
    assert res["counts"]["curate"] == first["counts"]["curate"]  # same code behaviour, new folder

    # a finished stage whose files changed on disk is redone, not trusted
    victim = sorted((tmp_path / "runs" / "curate" / res["stage_hashes"]["curate"] / "data").glob("*.parquet"))[0]
    victim.unlink()
    again = keel_pipeline(str(recipe), sets, until="curate")
    assert again["stage_status"]["ingest"] == "cached" and again["stage_status"]["curate"] == "completed"
    assert victim.exists() and again["stage_hashes"]["curate"] == res["stage_hashes"]["curate"]
