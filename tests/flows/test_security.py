"""Safe by default: the secret scanner itself, secret scrubbing, weights-only loading, loopback binds."""
from __future__ import annotations

import ast
import gzip
from pathlib import Path

from tasks.track.tracking import flatten, scrub
from tests.conftest import PLANTED_SECRET, REPO, files_containing

CODE_DIRS = ("flows", "tasks", "model", "benchmarks")


def test_scanner_finds_a_planted_secret_in_plain_and_gzip_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "clean.txt").write_text("nothing to see")
    (tmp_path / "a" / "log.txt").write_text(f"key={PLANTED_SECRET}")
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(f'{{"k": "{PLANTED_SECRET}"}}'.encode()))
    assert sorted(Path(p).name for p in files_containing(PLANTED_SECRET, tmp_path)) == ["b.jsonl.gz", "log.txt"]


def test_secret_values_and_uri_credentials_are_scrubbed():
    flat = flatten({"storage": {"aws_secret_access_key": PLANTED_SECRET, "token": PLANTED_SECRET,
                                "uri": f"s3://user:{PLANTED_SECRET}@host/bucket", "n_workers": 2}})
    assert PLANTED_SECRET not in repr(flat) and flat["storage.n_workers"] == 2
    assert scrub("MLFLOW_TRACKING_PASSWORD", "x") == "***"
    assert scrub("endpoint", "http://host:9000") == "http://host:9000"


def _calls(name: str):
    for d in CODE_DIRS:
        for path in (REPO / d).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and ast.unparse(node.func) == name:
                    yield path, node


def test_every_torch_load_is_weights_only():
    for path, node in _calls("torch.load"):
        kw = {k.arg: k.value for k in node.keywords}
        assert "weights_only" in kw and ast.literal_eval(kw["weights_only"]) is True, f"{path}:{node.lineno}"


def test_no_server_binds_to_all_interfaces():
    for d in CODE_DIRS:
        for path in (REPO / d).rglob("*.py"):
            assert "0.0.0.0" not in path.read_text(), f"{path}: servers bind to 127.0.0.1 unless configured"


def test_secrets_from_a_prefect_secret_block_reach_the_run_but_nothing_written(tmp_path, demo_corpus, prefect_harness,
                                                                              monkeypatch):
    import os

    import pytest
    from prefect.blocks.system import Secret

    from flows.pipeline import keel_pipeline
    from tests.conftest import prefect_records_containing, write_recipe

    monkeypatch.delenv("KEEL_BLOCK_TOKEN", raising=False)
    Secret(value={"KEEL_BLOCK_TOKEN": PLANTED_SECRET}).save("keel-test-secrets", overwrite=True)
    Secret(value="just a string").save("keel-test-bad", overwrite=True)
    recipe = write_recipe(tmp_path, demo_corpus, ids=["mitre_cwe"])
    try:
        res = keel_pipeline(str(recipe), ['run.secret_blocks=["keel-test-secrets"]'], until="ingest")
        assert os.environ["KEEL_BLOCK_TOKEN"] == PLANTED_SECRET and res["counts"]["ingest"]["kept"] > 0
        assert files_containing(PLANTED_SECRET, tmp_path) == [] and prefect_records_containing(PLANTED_SECRET) == []
        with pytest.raises(Exception, match="must hold a JSON object"):
            keel_pipeline(str(recipe), ['run.secret_blocks=["keel-test-bad"]'], until="legal")
    finally:
        os.environ.pop("KEEL_BLOCK_TOKEN", None)
