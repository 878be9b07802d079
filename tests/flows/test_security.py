"""Safe by default: the secret scanner itself, secret redaction, credentials out of URIs, loopback binds."""
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


def test_redaction_masks_registered_values_uri_passwords_and_signed_url_tokens():
    from tasks.core import secrets

    secrets.register("registered-value-9f2")
    text = ("a registered-value-9f2 b https://u:pw1234567@host/x?X-Amz-Signature=abcdef123&X-Amz-Date=20260101 "
            "https://acct.blob.core.windows.net/c/f?sv=2020-08-04&sig=QWERTY%2Bxyz Authorization: Bearer eyJhbGciOi.x")
    out = secrets.redact(text)
    for hidden in ("registered-value-9f2", "pw1234567", "abcdef123", "QWERTY", "eyJhbGciOi"):
        assert hidden not in out, hidden
    assert "X-Amz-Date=20260101" in out and "https://u:***@host/x" in out and "sv=2020-08-04" in out
    flat = flatten({"db": {"dsn": "postgresql://h/db", "private_key": "-----BEGIN", "sas": "x", "client_secret": "y",
                           "session_token": "z", "connection_string": "w", "n_workers": 2, "max_tokens": 5}})
    assert {k for k, v in flat.items() if v == "***"} == {f"db.{k}" for k in ("dsn", "private_key", "sas", "client_secret",
                                                                              "session_token", "connection_string")}


def test_uri_credentials_go_to_the_environment_and_recipes_refer_to_variables(tmp_path, demo_corpus, monkeypatch):
    import json
    import os

    import pytest

    from tasks.core.config import RecipeError
    from tasks.recipe import load_recipe
    from tests.conftest import write_recipe

    for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("KEEL_TEST_PASSWORD", PLANTED_SECRET)
    recipe = write_recipe(tmp_path, demo_corpus)
    r = load_recipe(recipe, ['run.tracking_uri="http://keel-runner:${env:KEEL_TEST_PASSWORD}@127.0.0.1:5000"',
                             f'run.output_root="s3://AKIAKEEL:{PLANTED_SECRET}x@bucket/runs"'])
    assert r.run.tracking_uri == "http://127.0.0.1:5000" and r.run.output_root == "s3://bucket/runs"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "keel-runner"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == PLANTED_SECRET
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == PLANTED_SECRET + "x" and os.environ["AWS_ACCESS_KEY_ID"] == "AKIAKEEL"
    assert PLANTED_SECRET not in json.dumps(r.to_dict())
    with pytest.raises(RecipeError, match="KEEL_NOT_SET is not set"):
        load_recipe(recipe, ['run.name="${env:KEEL_NOT_SET}"'])
    with pytest.raises(RecipeError) as exc:  # another service's credentials in a URI: refused, without echoing them
        load_recipe(recipe, [f'run.output_root="gs://u:{PLANTED_SECRET}y@bucket/x"'])
    assert "not supported" in str(exc.value) and PLANTED_SECRET not in str(exc.value)


def test_log_records_and_command_line_overrides_hold_no_secret(tmp_path, demo_corpus, monkeypatch, caplog):
    import logging

    import pytest

    from flows.cli import _private_overrides
    from tasks.core import secrets
    from tasks.recipe import load_recipe
    from tests.conftest import write_recipe

    secrets.install_log_redaction()
    logging.getLogger("keel.test").warning("connecting to %s", f"http://u:{PLANTED_SECRET}@host:1")
    assert "connecting to http://u:***@host:1" in caplog.text and PLANTED_SECRET not in caplog.text
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.delenv("KEEL_SET_0", raising=False)  # set by the call below, removed after the test
    out = _private_overrides([f"run.tracking_uri=http://u:{PLANTED_SECRET}@127.0.0.1:1", "pretrain.steps=3"])
    assert PLANTED_SECRET not in repr(out) and out[1] == "pretrain.steps=3"
    assert load_recipe(write_recipe(tmp_path, demo_corpus), out).run.tracking_uri == "http://127.0.0.1:1"
    with pytest.raises(ValueError, match="Secret block"):
        _private_overrides([f"run.tracking_uri=http://u:{PLANTED_SECRET}@h:1"], deploy=True)


def test_no_server_binds_to_all_interfaces():
    """No string in the code is an all-interfaces address (what a bind would take); prose may mention one."""
    for d in CODE_DIRS:
        for path in (REPO / d).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    assert node.value.strip() not in ("0.0.0.0", "[::]"), \
                        f"{path}:{node.lineno}: servers bind to 127.0.0.1 unless configured"


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
