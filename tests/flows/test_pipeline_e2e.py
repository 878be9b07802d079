"""The whole DAG on the real demo corpus with a tiny recipe: registry, lineage, conservation, mix, caching (of
config and of code), forget, secrets."""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.pipeline import keel_pipeline
from tasks.core import cachekey
from tasks.core.cluster import list_parts
from tasks.recipe import load_recipe
from tests.conftest import REPO, files_containing, plant_secrets, prefect_records_containing, write_recipe

pytestmark = pytest.mark.slow

DATA_STAGES = ["ingest", "contract_raw", "curate", "contract_curated", "tokenize"]
ALL = ["legal", *DATA_STAGES, "pretrain", "specialize", "evaluate", "register"]


def _rows(folder) -> int:
    return sum(len(pd.read_parquet(p, columns=["doc_id"] if "00_ingest" not in p else None)) for p in list_parts(folder))


def test_pipeline_end_to_end_then_cached_then_knob_change(tmp_path, demo_corpus, prefect_harness, monkeypatch, capfd):
    secret = plant_secrets(monkeypatch)
    tree = tmp_path / "tree"  # the code the cache keys read: a copy, so the test can edit it
    for pkg in cachekey.PACKAGES:
        shutil.copytree(REPO / pkg, tree / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cachekey, "REPO", tree)
    recipe = write_recipe(tmp_path, demo_corpus)
    first = keel_pipeline(str(recipe))
    assert all(first["stage_status"][s] == "completed" for s in ALL if s != "legal")

    # registry entry, aliases and lineage tags
    r = load_recipe(recipe)
    client = MlflowClient(first["tracking_uri"])
    mv = client.get_model_version_by_alias(r.run.registered_model, "candidate")
    assert str(mv.version) == first["version"]
    for stage in ["ingest", "curate", "tokenize", "pretrain", "specialize", "evaluate"]:
        assert mv.tags[f"keel.stage_hash.{stage}"] == first["stage_hashes"][stage]
    assert set(mv.tags["keel.sources"].split(",")) == set(r.sources.ids)
    assert json.loads(mv.tags["keel.licenses"])["mitre_cwe"] == "LicenseRef-scancode-cwe-tou"
    assert mv.tags["keel.prefect_flow_run_id"] == first["flow_run_id"]
    assert ("champion" in first["aliases"]) == (mv.tags["keel.gate.promote"] == "true")

    # the tokenizer and the curation funnel chart are MLflow artifacts of their stage runs
    exp = client.get_run(mv.run_id).info.experiment_id
    tok_run = client.search_runs([exp], "tags.`keel.stage` = 'tokenize'")[0]
    assert [a.path for a in client.list_artifacts(tok_run.info.run_id, "tokenizer")] == ["tokenizer/tokenizer.json"]
    cur_run = client.search_runs([exp], "tags.`keel.stage` = 'curate'")[0]
    assert "curation_funnel.png" in [a.path for a in client.list_artifacts(cur_run.info.run_id)]
    # downstream tasks built from the held-out split: their items logged, scored by lm-eval, tagged on the version
    assert [a.path for a in client.list_artifacts(tok_run.info.run_id, "evalsets")]
    accs = {k: float(v) for k, v in mv.tags.items() if k.startswith("keel.eval.task.") and k.endswith(".acc")}
    assert "keel.eval.task.keel_cybersecurity_continuation.acc" in accs and all(0 <= a <= 1 for a in accs.values())
    decont = json.loads(mv.tags["keel.eval.decontaminated"])
    assert sum(decont.values()) == first["counts"]["tokenize"]["rejected"]
    assert all(k.startswith("eval_contamination:") for k in decont)

    # the registered model loads by alias, verified against the registry's manifest, and generates text; the HF
    # export matches megatron
    from tasks.track.tracking import load_verified

    lm = load_verified(first["tracking_uri"], f"{r.run.registered_model}@candidate")
    out = lm.predict(["The attacker", "To be"], params={"max_new_tokens": 8})
    assert len(out) == 2 and all(isinstance(x, str) and x for x in out)
    assert first["export_max_abs_logit_diff"] < 1e-4
    # the version carries its model card and a Croissant description of its training data (valid for mlcroissant,
    # its records the ledger's rows)
    import mlcroissant as mlc

    from tasks.track.tracking import verified_model

    folder = verified_model(first["tracking_uri"], f"{r.run.registered_model}:{first['version']}", str(tmp_path / "dl"))
    card = (folder / "artifacts" / "model_card.md").read_text()
    for section in ("## Intended use", "## Training data", "## Curation", "## Evaluation", "## Gate decision",
                    "## Limitations", "mitre_cwe", "LicenseRef-scancode-cwe-tou", "decontamination"):
        assert section in card, section
    croissant = mlc.Dataset(jsonld=str(folder / "artifacts" / "croissant.json"))
    assert croissant.metadata.data_collection and croissant.metadata.personal_sensitive_information
    assert sum(1 for _ in croissant.records("documents")) == first["counts"]["tokenize"]["in"]

    # conservation at every stage, checked against the files on disk
    c = first["counts"]
    for stage in DATA_STAGES:
        assert c[stage]["in"] == c[stage]["kept"] + c[stage]["rejected"]
    assert c["curate"]["in"] == c["ingest"]["kept"] and c["tokenize"]["in"] == c["curate"]["kept"]
    cur = f"{first['output_root']}/curate/{first['stage_hashes']['curate']}"
    assert _rows(f"{cur}/data") == c["curate"]["kept"]
    assert _rows(f"{cur}/rejects") == c["curate"]["rejected"] > 0
    for p in list_parts(f"{cur}/rejects"):
        rej = pd.read_parquet(p, columns=["reject_step", "reject_reason"])
        assert rej["reject_reason"].notna().all() and rej["reject_step"].nunique() == 1

    # the realized specialization mix is 50/50
    for domain, share in first["realized_mix"].items():
        assert abs(share - 0.5) < 0.01, (domain, share)

    # unchanged recipe: every stage cached, same registered version
    second = keel_pipeline(str(recipe))
    assert set(second["stage_status"].values()) == {"cached"}
    assert second["version"] == first["version"] and second["stage_hashes"] == first["stage_hashes"]

    # a training knob, a comment in model/ and a deleted output file, in one re-run: the data stages stay cached
    # except the finished stage whose file vanished, which is redone (not trusted) with the same output; training
    # and what follows re-run (which stages each file's edit re-runs, a curation rule's included:
    # tests/tasks/core/test_cachekey.py)
    data = ["legal", "ingest", "contract_raw", "curate", "contract_curated", "tokenize", "contract_tokenized"]
    victim = sorted((tmp_path / "runs" / "curate" / first["stage_hashes"]["curate"] / "data").glob("*.parquet"))[0]
    victim.unlink()
    _touch(tree, "model/presets.py")
    third = keel_pipeline(str(recipe), ["specialize.steps=1", "specialize.lr=1e-7", "specialize.min_lr=1e-8"])
    assert [third["stage_status"][s] for s in data] == ["cached"] * 3 + ["completed"] + ["cached"] * 3, third["stage_status"]
    assert victim.exists() and third["stage_hashes"]["tokenize"] == first["stage_hashes"]["tokenize"]
    assert all(third["stage_status"][s] == "completed" for s in ["pretrain", "specialize", "evaluate", "register"])
    assert int(third["version"]) == int(first["version"]) + 1
    t3 = client.get_model_version(r.run.registered_model, third["version"]).tags  # champion-challenger
    assert t3["keel.promotion.against"] == (f"version {first['version']}" if "champion" in first["aliases"] else "base")
    assert ("champion" in third["aliases"]) == (t3["keel.promotion.decision"] == "champion")
    # a deliberately weaker challenger (one step at a negligible learning rate) leaves champion where it is
    assert "champion" in first["aliases"] and "champion" not in third["aliases"]
    assert t3["keel.promotion.decision"] == "not champion"
    assert t3["keel.promotion.reasons"].startswith(f"champion stays version {first['version']}")
    assert str(client.get_model_version_by_alias(r.run.registered_model, "champion").version) == first["version"]

    # lineage: model -> sources, licences, tokens, ledger; data -> models
    from flows.cli import main as cli
    from tasks.govern import lineage

    uri = first["tracking_uri"]
    lin = lineage.model_lineage(uri, f"{r.run.registered_model}@candidate")
    ledger = pd.read_parquet(lin["ledger_uri"])
    assert len(ledger) == c["tokenize"]["in"] and ledger["doc_id"].is_unique  # kept and decontaminated documents
    assert (ledger["split"] == "rejected").sum() == c["tokenize"]["rejected"]
    assert sum(lin["tokens_by_source"].values()) == int(ledger[ledger["split"] == "train"]["num_tokens"].sum())
    assert lin["licenses"]["mitre_attack"] == "LicenseRef-MITRE-ATTACK-ToU" and lin["tokens_by_license"]
    assert {m["version"] for m in lineage.versions_with_source(uri, "mitre_cwe")} == {first["version"], third["version"]}
    doc = ledger[(ledger["source_id"] == "mitre_attack") & (ledger["split"] == "train")]["doc_id"].iloc[0]
    assert {m["version"] for m in lineage.versions_with_doc(uri, doc)} == {first["version"], third["version"]}

    # forget one document: opt-out recorded, models that saw it tainted and their aliases moved at once, its text
    # purged from the output root, the re-run excludes it
    text = pd.concat(pd.read_parquet(p) for p in list_parts(f"{first['output_root']}/ingest")
                     if "doc_id" in pd.read_parquet(p).columns).set_index("doc_id").loc[doc, "text"]
    assert cli(["forget", "--doc", doc, "--recipe", str(recipe), "--purge", "--json"]) == 0
    for v in (first["version"], third["version"]):
        assert client.get_model_version(r.run.registered_model, v).tags["keel.tainted"] == "true"
    after = lineage.model_lineage(uri, f"{r.run.registered_model}@candidate")
    assert int(after["version"]) > int(third["version"]) and not after["tainted"]
    for alias, v in client.get_registered_model(r.run.registered_model).aliases.items():
        assert int(v) > int(third["version"]), (alias, v)  # no alias left on a version that saw the document
    for p in list_parts(first["output_root"]):
        df = pd.read_parquet(p)
        if {"doc_id", "text"} <= set(df.columns):
            assert not (df["text"] == text).any(), p  # kept nowhere, rejects included (ids and hashes only)
    assert doc not in set(pd.read_parquet(after["ledger_uri"])["doc_id"])
    assert lineage.versions_with_doc(uri, doc) == [m for m in lineage.versions_with_doc(uri, doc)
                                                   if m["version"] in (first["version"], third["version"])]
    ing2 = after["stage_hashes"]["ingest"]  # re-read without it: rejected as read, with its id and hash only
    rej = pd.concat(pd.read_parquet(p) for p in list_parts(f"{first['output_root']}/ingest/{ing2}/rejects"))
    assert rej.loc[rej["raw"].str.startswith(f"doc_id={doc} "), "reject_reason"].tolist() == ["optout_doc"]
    assert ing2 != first["stage_hashes"]["ingest"]

    # the planted secrets reached nothing keel wrote: outputs, MLflow store and artifacts, checkpoints, Prefect
    # logs and artifacts, the terminal
    import os

    assert files_containing(secret, tmp_path, os.environ["PREFECT_HOME"]) == []
    assert prefect_records_containing(secret) == []
    out, err = capfd.readouterr()
    assert secret not in out and secret not in err

    # whoever can write only the artifact store or the output root cannot change what a verified load runs
    _tampered_registry_files_are_refused(client, r.run.registered_model, first, tmp_path)


def _tampered_registry_files_are_refused(client, name: str, first: dict, tmp_path) -> None:
    from urllib.parse import urlparse

    from model.integrity import IntegrityError
    from tasks.govern import lineage
    from tasks.track.tracking import load_verified

    uri = first["tracking_uri"]
    mv = client.get_model_version(name, first["version"])
    stored = Path(urlparse(client.get_model_version_download_uri(name, first["version"])).path)
    code = next(p for p in stored.rglob("*.py"))
    pwned = tmp_path / "pwned"
    code.write_text(f"import pathlib\npathlib.Path({str(pwned)!r}).touch()\n" + code.read_text())
    with pytest.raises(IntegrityError, match=f"{code.name} in the artifact store does not match"):
        load_verified(uri, f"{name}:{first['version']}")
    assert not pwned.exists()
    ledger = Path(urlparse(mv.tags["keel.ledger_uri"]).path if "://" in mv.tags["keel.ledger_uri"]
                  else mv.tags["keel.ledger_uri"])
    ledger.write_bytes(ledger.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match="ledger .* refused"):
        lineage.versions_with_doc(uri, "any")


def _touch(tree, rel: str) -> None:
    with open(tree / rel, "a") as f:
        f.write("\n# edited\n")


def test_unapproved_source_stops_the_run_before_ingest(tmp_path, demo_corpus, prefect_harness):
    manifests = tmp_path / "sources"
    manifests.mkdir()
    shutil.copy(REPO / "data_contracts/sources/shakespeare.toml", manifests)
    src = (REPO / "data_contracts/sources/mitre_cwe.toml").read_text()
    (manifests / "mitre_cwe.toml").write_text(src.replace('status = "approved"', 'status = "pending"'))
    recipe = write_recipe(tmp_path, demo_corpus, ids=["shakespeare", "mitre_cwe"], manifests=manifests)
    with pytest.raises(Exception, match="legal review is 'pending'"):
        keel_pipeline(str(recipe))
    assert not (tmp_path / "runs" / "ingest").exists()


def test_failed_contract_stops_downstream_with_a_report(tmp_path, demo_corpus, prefect_harness):
    suites = tmp_path / "expectations"
    shutil.copytree(REPO / "data_contracts" / "expectations", suites)
    suite = json.loads((suites / "curated.json").read_text())
    suite["expectations"].append({"type": "expect_column_value_lengths_to_be_between",
                                  "kwargs": {"column": "text", "min_value": 1, "max_value": 200}})
    (suites / "curated.json").write_text(json.dumps(suite))
    recipe = write_recipe(tmp_path, demo_corpus, ids=["mitre_attack"])
    with pytest.raises(Exception, match="data contract 'curated' failed"):
        keel_pipeline(str(recipe), [f"contracts.expectations={json.dumps(str(suites))}"])
    assert (tmp_path / "runs" / "curate").exists() and not (tmp_path / "runs" / "tokenize").exists()
    report = next((tmp_path / "runs" / "contract_curated").glob("*/report.md")).read_text()
    assert "FAILED" in report and "expect_column_value_lengths_to_be_between" in report
