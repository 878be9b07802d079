"""Shared fixtures: isolated Prefect/MLflow homes, the real demo corpus, tiny recipes."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("keel-home")
    os.environ["PREFECT_HOME"] = str(home / "prefect")
    os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(home / "prefect" / "storage")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ.pop("KEEL_TRACKING_URI", None)
    yield home


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    """The real demo corpus, built once per session from installed packages."""
    from tasks.corpus import build_demo_corpus

    root = tmp_path_factory.mktemp("corpus")
    build_demo_corpus(root)
    return root


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


TINY_RECIPE = """
[run]
name = "keel-test"
output_root = "{root}/runs"
tracking_uri = "sqlite:///{root}/mlflow.db"
registered_model = "keel-test-cyber"
seed = 7

[sources]
ids = {ids}
manifests = "{manifests}"
data_root = "{data_root}"

[legal]
policy = "{policy}"
optout = "{root}/optout.toml"

[dask]
n_workers = 2
partition_rows = 1500

[curate]
steps = ["normalize", "legal_policy", "language", "gopher_quality", "gopher_repetition", "hap", "pii"]
min_words = 20
min_lang_score = 0.3

[contracts]
expectations = "{expectations}"

[tokenize]
vocab_size = 1024
test_per_mille = 60

[model]
preset = "tiny"
seq_length = 64

[pretrain]
steps = 4
micro_batch_size = 4
global_batch_size = 8
warmup_steps = 1
mix = {{general = 1.0}}

[specialize]
steps = 4
micro_batch_size = 4
global_batch_size = 8
warmup_steps = 1
mix = {{cybersecurity = 0.5, general = 0.5}}

[evaluate]
max_sequences = 8
max_general_regression = 10.0
"""


def write_recipe(root: Path, data_root: Path, ids=("shakespeare", "python_docs", "mitre_cwe", "mitre_attack"),
                 manifests: Path | None = None, policy: Path | None = None) -> Path:
    text = TINY_RECIPE.format(root=root, ids=list(ids), data_root=data_root,
                              manifests=manifests or REPO / "data_contracts" / "sources",
                              policy=policy or REPO / "data_contracts" / "policy.toml",
                              expectations=REPO / "data_contracts" / "expectations").replace("'", '"')
    path = root / "recipe.toml"
    path.write_text(text)
    return path


@pytest.fixture
def tiny_recipe(tmp_path, demo_corpus) -> Path:
    return write_recipe(tmp_path, demo_corpus)


def copy_manifests(dst: Path) -> Path:
    shutil.copytree(REPO / "data_contracts" / "sources", dst)
    return dst
