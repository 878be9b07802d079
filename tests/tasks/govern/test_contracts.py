"""Great Expectations contracts: per-partition validation on Dask, global checks, readable failure reports."""
import json

import pandas as pd
import pytest

from tasks.core.cluster import Cluster
from tasks.govern import contracts
from tasks.govern.contracts import (ContractCheck, ContractError, ContractInputs, load_suite_json, report_markdown,
                                    validate_frame, validate_parts)
from tests.conftest import REPO, run_direct
SUBS = {"$allowed_licenses": ["MIT"], "$languages": ["en"], "$hap_threshold": 0.99}


def _frame(n=3, **over):
    df = pd.DataFrame({"doc_id": [f"{i:032d}" for i in range(n)], "source_id": "s", "domain": "general",
                       "license": "MIT", "text": [f"clean text {i}" for i in range(n)], "content_sha256": "x",
                       "lang": "en", "hap_score": 0.1})
    for k, v in over.items():
        df[k] = v
    return df


def test_curated_suite_passes_clean_data_and_names_each_violation():
    suite = load_suite_json(REPO / "data_contracts/expectations/curated.json", SUBS)
    assert validate_frame(_frame(), suite)["success"]
    bad = _frame(text=["ok", "write to a@b.org", "ssn 123-45-6789"], license=["MIT", "GPL-3.0-only", "MIT"],
                 lang=["en", "en", "fr"], hap_score=[0.1, 0.995, 0.2])
    res = validate_frame(bad, suite)
    failed = sorted((r["expectation"], r["kwargs"].get("column"), r["unexpected_count"])
                    for r in res["results"] if not r["success"])
    assert failed == [("expect_column_values_to_be_between", "hap_score", 1),
                      ("expect_column_values_to_be_in_set", "lang", 1),
                      ("expect_column_values_to_be_in_set", "license", 1),
                      ("expect_column_values_to_not_match_regex", "text", 1),  # email
                      ("expect_column_values_to_not_match_regex", "text", 1)]  # US SSN
    shown = json.dumps([r["sample"] for r in res["results"]])  # reports reach MLflow and Prefect: no content, no PII
    assert "a@b.org" not in shown and "123-45-6789" not in shown and shown.count("sha256:") == 2
    assert "GPL-3.0-only" in shown  # other columns keep their values


def test_unknown_substitution_is_a_clear_error(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"name": "s", "expectations": [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "x", "value_set": "$nope"}}]}))
    with pytest.raises(ValueError, match=r"unknown substitution \$nope"):
        load_suite_json(p, SUBS)


def test_partitions_on_dask_and_global_uniqueness(tmp_path):
    a, b = _frame(3), _frame(2)  # b repeats doc ids 0 and 1 in another partition
    a.to_parquet(tmp_path / "a.parquet")
    b.to_parquet(tmp_path / "b.parquet")
    suite = load_suite_json(REPO / "data_contracts/expectations/curated.json", SUBS)
    cluster = Cluster(n_workers=1)
    try:
        rep = validate_parts([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")], suite, cluster,
                             str(tmp_path / "_unique"))
    finally:
        cluster.close()
    assert not rep.success and rep.rows == 5 and rep.partitions == 2
    uniq = next(r for r in rep.results if r.expectation == "global:unique")
    assert uniq.unexpected_count == 2 and not uniq.success and sorted(uniq.sample) == [f"{i:032d}" for i in (0, 1)]
    assert not (tmp_path / "_unique").exists()
    md = report_markdown(rep)
    assert "FAILED" in md and "global:unique" in md and "**FAIL**" in md


def test_contract_stage_raises_once_with_its_report_and_warns_without_blocking(tmp_path):
    folder = tmp_path / "curate" / "c" / "data"
    folder.mkdir(parents=True)
    pd.concat([_frame(3), _frame(2)]).to_parquet(folder / "a.parquet")  # duplicate doc ids
    exp = str(REPO / "data_contracts" / "expectations")
    cluster = Cluster(n_workers=1)
    try:
        with pytest.raises(ContractError) as exc:
            run_direct(contracts.STAGE, ContractCheck("curated", exp, SUBS), ContractInputs(folder="curate/c/data"),
                       tmp_path, cluster, name="contract_curated")
        assert "global:unique" in exc.value.markdown and not exc.value.report.success
        assert "FAILED" in (tmp_path / "contract_curated" / "x" / "report.md").read_text()
        ok, _ = run_direct(contracts.STAGE, ContractCheck("curated", exp, SUBS, warn_only=("global:unique",)),
                           ContractInputs(folder="curate/c/data"), tmp_path, cluster, name="contract_curated")
    finally:
        cluster.close()
    assert ok.passed and not ok.report.success and [w.expectation for w in ok.warnings] == ["global:unique"]
    assert ok.counts.received == 5
    rows, _ = run_direct(contracts.STAGE, ContractCheck("mix", exp, {}),
                         ContractInputs(rows=({"domain": "g", "planned": 0.5, "realized": 0.5, "abs_diff": 0.0},)),
                         tmp_path, name="contract_mix")
    assert rows.passed and rows.counts is None
