"""`keel study` end to end at toy size, on the data stages another test session-fixture prepared (cached here):
per seed a base, a continued pretraining at a domain share and a larger natural-mix model on the same compute,
each scored on the held-out data; mean ± std per arm, the chart and the conclusion in the flow's MLflow run,
one child run per stage; a re-run trains nothing."""
from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from tests.conftest import LONG_RUN_DATA, LONG_RUN_IDS, start_from, write_recipe

pytestmark = pytest.mark.slow

STUDY = [*LONG_RUN_DATA, "study.seeds=[1, 2]", "study.ratios=[0.5]", "study.compute_multiples=[1]",
         "baseline.num_layers=3", "baseline.hidden_size=96", "baseline.global_batch_size=8",
         "baseline.micro_batch_size=4", "baseline.warmup_steps=1", "evaluate.max_task_items=4"]


def test_study_trains_every_arm_per_seed_and_reports_mean_and_spread(tmp_path, demo_corpus, long_run_data,
                                                                      prefect_harness):
    from flows.study import keel_study

    recipe = write_recipe(tmp_path, demo_corpus, ids=LONG_RUN_IDS)
    start_from(long_run_data, tmp_path / "runs")
    res = keel_study(str(recipe), STUDY)
    status = res["stage_status"]
    assert all(status[s] == "cached" for s in ("ingest", "curate", "tokenize")), status
    trained = [s for s in status if s.startswith("study_") and not s.startswith("study_eval")]
    assert sorted(trained) == sorted(f"study_{a}_s{seed}" for a in ("base", "ratio_050", "natural_1x")
                                     for seed in (1, 2))
    arms = {a["arm"]: a for a in res["arms"]}
    assert list(arms) == ["base", "ratio_050", "natural_1x"] and all(a["seeds"] == 2 for a in arms.values())
    runs = res["runs"]
    for arm in arms:  # the spread is over two different models: seeds change the weights
        pair = [r for r in runs if r["arm"] == arm]
        assert pair[0]["domain_bpb"] != pair[1]["domain_bpb"] and arms[arm]["std"]["domain_bpb"] > 0
    assert arms["natural_1x"]["params"] > arms["base"]["params"]
    small = arms["ratio_050"]["flops"]  # the base's tokens and its own: the natural model had the same compute
    assert small <= arms["natural_1x"]["flops"] < small * 1.5
    assert res["natural_mix"].keys() == {"cybersecurity", "general"}
    assert res["conclusion"]["best_ratio"] == "ratio_050"
    report = open(res["report"]).read()
    assert "| ratio_050 | 2 |" in report and "±" in report and "natural-mix model" in report
    assert open(res["chart"], "rb").read(4) == b"\x89PNG"

    client = MlflowClient(res["tracking_uri"])
    parent = client.get_run(res["mlflow_run_id"])
    assert parent.data.tags["keel.study.best_ratio"] == "ratio_050"
    assert {"study.ratio_050.domain_bpb", "study.ratio_050.domain_bpb_std"} <= set(parent.data.metrics)
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"study.md", "study_frontier.png",
                                                                           "study.json"}
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    evals = [c for c in children if c.data.tags.get("keel.stage", "").startswith("study_eval_")]
    assert len(evals) == 6 and all("cybersecurity.bpb" in c.data.metrics for c in evals)

    again = keel_study(str(recipe), STUDY)
    assert set(again["stage_status"].values()) == {"cached"}
    assert json.dumps(again["arms"], sort_keys=True) == json.dumps(res["arms"], sort_keys=True)
