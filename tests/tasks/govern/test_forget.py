"""`keel forget` beyond the opt-out file: the document's copies and near-duplicate cluster, aliases moved off
tainted versions, and the purge of its text from the output root."""
import json
from pathlib import Path

import pandas as pd
import pytest

from tasks.govern import forget


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path)


@pytest.fixture
def root(tmp_path):
    """An output root as a run leaves it: ingested docs, curated data, dedup rejects, tokenized ledger, task items."""
    r = tmp_path / "runs"
    docs = [{"doc_id": "A", "content_sha256": "hA", "text": "secret text of A", "source_id": "s"},
            {"doc_id": "A2", "content_sha256": "hA", "text": "secret text of A", "source_id": "s"},  # exact copy
            {"doc_id": "N", "content_sha256": "hN", "text": "secret text of A, nearly", "source_id": "s"},
            {"doc_id": "B", "content_sha256": "hB", "text": "other text", "source_id": "s"}]
    _write(r / "ingest/i1/docs/part-0.parquet", docs)
    _write(r / "curate/c1/data/part-0.parquet", [docs[0], docs[3]])
    _write(r / "curate/c1/rejects/09_exact_dedup/part-0.parquet",
           [{**docs[1], "duplicate_of": "A", "reject_step": "exact_dedup", "reject_reason": "exact_duplicate"}])
    _write(r / "curate/c1/rejects/10_near_dedup/part-0.parquet",
           [{**docs[2], "duplicate_of": "A", "reject_step": "near_dedup", "reject_reason": "near_duplicate"}])
    _write(r / "tokenize/t1/ledger.parquet", [{"doc_id": "A", "split": "train"}, {"doc_id": "B", "split": "train"}])
    (r / "tokenize/t1/datasets").mkdir(parents=True)
    (r / "tokenize/t1/datasets/s_train.bin").write_bytes(b"tokens of A")
    (r / "tokenize/t1/_SUCCESS").write_text("{}")
    _write(r / "tokenize/t2/ledger.parquet", [{"doc_id": "B", "split": "train"}])
    (r / "tokenize/t2/evalsets").mkdir(parents=True)
    (r / "tokenize/t2/evalsets/keel_x_name.jsonl").write_text(
        json.dumps({"context": "secret", "doc_id": "N"}) + "\n" + json.dumps({"context": "other", "doc_id": "B"}) + "\n"
        # a wrong choice taken from a forgotten document
        + json.dumps({"context": "x", "choices": ["secret text span"], "doc_id": "B", "sources": ["B", "A2"]}) + "\n"
        + json.dumps({"context": "y", "choices": ["kept"], "doc_id": "B", "sources": ["B"]}) + "\n")
    return r


def test_a_document_brings_its_copies_and_near_duplicate_cluster(root):
    f = forget.expand(str(root), "A")
    assert f.doc_ids == {"A", "A2", "N"} and f.content_sha256 == {"hA", "hN"}
    assert forget.expand(str(root), "N").doc_ids == {"A", "A2", "N"}  # from a set-aside duplicate to its survivor
    assert forget.expand(str(root), "B").doc_ids == {"B"}


def test_purge_removes_the_text_everywhere_and_keeps_ids_in_rejects(root):
    changed = forget.purge(str(root), forget.expand(str(root), "A"))
    assert changed
    assert list(pd.read_parquet(root / "ingest/i1/docs/part-0.parquet")["doc_id"]) == ["B"]
    assert list(pd.read_parquet(root / "curate/c1/data/part-0.parquet")["doc_id"]) == ["B"]
    for rej in ("09_exact_dedup", "10_near_dedup"):
        df = pd.read_parquet(root / f"curate/c1/rejects/{rej}/part-0.parquet")
        assert len(df) == 1 and (df["text"] == "").all() and df["content_sha256"].iloc[0] in {"hA", "hN"}
    assert not (root / "tokenize/t1/datasets").exists() and not (root / "tokenize/t1/_SUCCESS").exists()
    assert (root / "tokenize/t1/ledger.parquet").exists()  # ids and hashes: lineage still answers
    assert (root / "tokenize/t2/ledger.parquet").exists()
    items = (root / "tokenize/t2/evalsets/keel_x_name.jsonl").read_text().splitlines()
    assert [json.loads(x)["context"] for x in items] == ["other", "y"]
    for p in root.rglob("*"):
        if p.is_file():
            assert b"secret text" not in p.read_bytes(), p


def test_aliases_leave_tainted_versions(tmp_path):
    from tasks.track.tracking import registry_client

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = registry_client(uri)
    client.create_registered_model("m")
    for v, promote in ((1, "true"), (2, "false"), (3, "true"), (4, "true")):
        client.create_model_version("m", str(tmp_path), tags={"keel.gate.promote": promote})
    client.set_registered_model_alias("m", "champion", "4")
    client.set_registered_model_alias("m", "candidate", "4")
    client.set_registered_model_alias("m", "stable", "2")
    msgs = forget.taint(uri, [{"model": "m", "version": "4"}, {"model": "m", "version": "3"}], "opt-out of document A")
    aliases = {k: str(v) for k, v in client.get_registered_model("m").aliases.items()}
    assert aliases == {"champion": "1", "candidate": "1", "stable": "2"}  # newest untainted that passed its gate
    assert any("m@champion: version 4 is tainted, moved to version 1" in m for m in msgs)
    forget.taint(uri, [{"model": "m", "version": "1"}], "opt-out of document B")
    assert {k: str(v) for k, v in client.get_registered_model("m").aliases.items()} == {"stable": "2"}  # no untainted version passed: removed
    assert client.get_model_version("m", "4").tags["keel.tainted_reason"] == "opt-out of document A"
    from tasks.track.tracking import list_models

    flags = {v["version"]: v["tainted"] for v in list_models(uri)[0]["versions"]}
    assert flags == {"4": True, "3": True, "2": False, "1": True}


def test_purge_reaches_the_task_items_logged_to_mlflow(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("e", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(exp)
    items = tmp_path / "keel_x_continuation.jsonl"
    items.write_text(json.dumps({"context": "secret text", "doc_id": "A"}) + "\n"
                     + json.dumps({"context": "x", "choices": ["secret text span"], "doc_id": "B", "sources": ["B", "N"]})
                     + "\n" + json.dumps({"context": "kept", "doc_id": "B", "sources": ["B"]}) + "\n")
    client.log_artifact(run.info.run_id, str(items), "evalsets")
    client.set_terminated(run.info.run_id)
    changed = forget.purge_tracked(uri, forget.Forgotten(doc_ids={"A", "N"}))
    assert len(changed) == 1 and "2 task items" in changed[0]
    back = Path(client.download_artifacts(run.info.run_id, "evalsets/keel_x_continuation.jsonl", str(tmp_path / "d")))
    assert [json.loads(x)["context"] for x in back.read_text().splitlines()] == ["kept"]
    assert forget.purge_tracked(uri, forget.Forgotten(doc_ids={"A", "N"})) == []  # nothing left to purge
