"""The keel pipeline: the parent Prefect flow. It wires each stage's typed config and inputs into the next stage
and holds no stage logic (that is in tasks/, one package per stage; flows/runner.py runs one stage).

legal -> ingest -> contract_raw -> curate -> contract_curated -> tokenize -> contract_tokenized -> plan
      -> pretrain -> specialize -> contract_mix -> [baseline] -> evaluate -> register
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows import publish, signals
from flows.locks import output_root_lock
from flows.runner import RunContext, retry_options, run_stage
from flows.secrets import apply_secret_blocks
from tasks.core import cachekey, secrets
from tasks.core.cluster import Cluster
from tasks.core.jobs import RunStopped
from tasks.core.typed import dump
from tasks.curate import stage as curate
from tasks.evaluate import stage as evaluate
from tasks.evaluate.stage import EvalInputs, EvalSettings
from tasks.govern import contracts, legal
from tasks.govern.contracts import ContractCheck, ContractInputs
from tasks.ingest import stage as ingest
from tasks.recipe import Recipe, load_recipe
from tasks.tokenize import stage as tokenize
from tasks.track import register
from tasks.track.tracking import Tracker, default_tracking_uri
from tasks.train import plan
from tasks.train import stage as train
from tasks.train.config import TrainSettings, baseline_settings
from tasks.train.stage import TrainResult

UNTIL = ("", "legal", "ingest", "curate", "tokenize", "plan", "pretrain", "specialize")


@flow(name="keel-pipeline", log_prints=True, validate_parameters=False)
def keel_pipeline(recipe_path: str, overrides: list[str] | None = None, until: str = "") -> dict:
    """Run the recipe; `until` stops after that stage (legal, ingest, curate, tokenize, plan, pretrain, specialize)."""
    if until not in UNTIL:
        raise ValueError(f"until must be one of {UNTIL}, not {until!r}")
    t0 = time.perf_counter()
    with run_context(recipe_path, overrides) as ctx:
        model = _pipeline(ctx, ctx.recipe, until)
        return _summary(ctx, model, t0)


@contextmanager
def run_context(recipe_path: str, overrides: list[str] | None):
    """What every flow of keel runs inside: stop signals that let jobs save, log redaction, the validated recipe,
    its Secret blocks, the MLflow parent run, the Dask cluster and the output-root lock. The tracker run ends
    KILLED or FAILED here when the body raises; the body ends it FINISHED."""
    signals.install()  # over Prefect's own SIGTERM handler: running jobs get to save a checkpoint first
    secrets.install_log_redaction()  # every log line of this process, Prefect's included, is redacted
    secrets.register_environment()
    recipe = load_recipe(recipe_path, overrides or [])  # the whole recipe is valid before any stage runs
    logger = get_run_logger()
    applied = apply_secret_blocks(list(recipe.run.secret_blocks))
    if applied:
        logger.info(f"environment from Secret blocks {list(recipe.run.secret_blocks)}: {sorted(applied)} (values hidden)")
    cachekey.closure.cache_clear()  # code read afresh for every run
    tracker = Tracker(recipe.run.tracking_uri or default_tracking_uri(), recipe.run.name, run_name=recipe.run.name,
                      tags={"keel.recipe": recipe_path, "keel.prefect_flow_run_id": str(flow_run.get_id())})
    cluster = Cluster(recipe.dask.address or os.environ.get("KEEL_DASK_ADDRESS", ""), recipe.dask.n_workers,
                      recipe.dask.memory_limit, logger)
    ctx = RunContext(recipe, tracker, cluster, logger, retry=retry_options(recipe.run.retries, recipe.run.retry_delay_s),
                     run_info={"flow_run_id": str(flow_run.get_id()), "flow_run_url": flow_run.get_flow_run_ui_url() or ""})
    try:
        tracker.log_params({"recipe": recipe.to_dict()})
        tracker.log_dict(recipe.to_dict(), "recipe.json")
        with output_root_lock(ctx.root, ctx.run_info["flow_run_id"]) as lock:
            ctx.lock = lock
            yield ctx
    except RunStopped as exc:
        tracker.end("KILLED")
        if signals.cancelled_from_prefect():  # a cancellation from Prefect: record the run as Cancelled
            from prefect.exceptions import TerminationSignal

            raise TerminationSignal(exc.signum) from exc
        raise
    except BaseException:
        tracker.end("FAILED")
        raise
    finally:
        cluster.close()


@dataclass(frozen=True)
class Data:
    """What the data stages hand to training: the legal gate, the sources and the tokenized datasets, with the
    contract checks passed on the way."""
    gate: Any
    curated: Any
    tokenized: Any
    checks: tuple


def data_stages(ctx: RunContext, r: Recipe, until: str = "") -> Data | None:
    """legal -> ingest -> contract_raw -> curate -> contract_curated -> tokenize -> contract_tokenized -> plan;
    None when `until` stops before the end."""
    exp = r.contracts.expectations
    gate = run_stage(ctx, legal.STAGE, legal.GateRequest(r.sources, r.legal), None)
    if until == "legal":
        return None
    sources = tuple(m.data() for m in gate.sources)
    ingested = run_stage(ctx, ingest.STAGE, ingest.IngestSettings(r.sources.limits(), r.dask.partition_rows,
                                                                r.sources.max_quarantined_share),
                         ingest.IngestInputs(sources, gate.policy.optout_doc_ids, gate.policy.optout_content_sha256))
    raw = run_stage(ctx, contracts.STAGE, ContractCheck("raw", exp, {"$source_ids": sorted(m.id for m in gate.sources)},
                                                        warn_only=("global:unique",)),
                    ContractInputs(folder=ingested.docs), name="contract_raw")
    if until == "ingest":
        return None
    curated = run_stage(ctx, curate.STAGE, r.curate, curate.CurateInputs(ingested, gate.policy))
    curated_ok = run_stage(ctx, contracts.STAGE, ContractCheck("curated", exp, {
        "$allowed_licenses": list(gate.allowed_licenses), "$languages": list(r.curate.language.languages),
        "$hap_threshold": r.curate.hap.threshold}), ContractInputs(folder=curated.data), name="contract_curated")
    if until == "curate":
        return None
    tokenized = run_stage(ctx, tokenize.STAGE, r.tokenize, tokenize.TokenizeInputs(curated, sources))
    tokens_ok = run_stage(ctx, contracts.STAGE, ContractCheck("tokenized", exp, {}),
                          ContractInputs(rows=tokenize.contract_rows(tokenized)), name="contract_tokenized")
    stages = {"pretrain": r.pretrain, "specialize": r.specialize}
    run_stage(ctx, plan.STAGE, plan.PlanSettings(r.plan, r.model, stages), tokenized)
    if until in ("tokenize", "plan"):
        return None
    return Data(gate=gate, curated=curated, tokenized=tokenized, checks=(raw, curated_ok, tokens_ok))


def _pipeline(ctx: RunContext, r: Recipe, until: str):
    data = data_stages(ctx, r, until)
    if data is None:
        return None
    exp, gate, curated, tokenized = r.contracts.expectations, data.gate, data.curated, data.tokenized
    base = run_stage(ctx, train.STAGE, TrainSettings(r.model, r.pretrain, r.run.seed), train.TrainInputs(tokenized),
                     name="pretrain")
    if until == "pretrain":
        return None
    special = run_stage(ctx, train.STAGE, TrainSettings(r.model, r.specialize, r.run.seed),
                        train.TrainInputs(tokenized, init_from=base), name="specialize")
    mix_ok = run_stage(ctx, contracts.STAGE, ContractCheck("mix", exp, {}), ContractInputs(rows=train.mix_rows(special)),
                       name="contract_mix")
    if until == "specialize":
        return None
    general_only = None
    if r.baseline.enabled:
        general_only = run_stage(ctx, train.STAGE, baseline_settings(r.model, r.pretrain, r.specialize, r.baseline,
                                                                     r.run.seed), train.TrainInputs(tokenized), name="baseline")
    evaluation = run_stage(ctx, evaluate.STAGE, EvalSettings(r.evaluate, r.curate.hap, r.domain),
                           EvalInputs(tokenized, base, special, general_only))
    ctx.run_info["contracts"] = json.dumps({c.report.suite: c.passed for c in (*data.checks, mix_ok)})
    ctx.run_info["stage_hashes"] = json.dumps(ctx.hashes)
    ctx.run_info["counts"] = json.dumps({k: c.row() for k, c in ctx.counts.items()})
    return run_stage(ctx, register.STAGE, register.RegisterSettings(r.run.registered_model,
                                                                    r.evaluate.min_gain_over_champion,
                                                                    r.evaluate.max_general_regression,
                                                                    r.evaluate.max_task_regression),
                     register.RegisterInputs(gate, tokenized, evaluation, curated))


def _summary(ctx: RunContext, model, t0: float) -> dict:
    publish.run_artifacts(ctx.results, ctx.status, ctx.tracker)
    evaluation = ctx.results.get("evaluate")
    if model:
        publish.registry_artifact(model, evaluation.gate, ctx.tracker)
    ctx.tracker.set_tags({"keel.status": "completed", **({"keel.model_version": model.version} if model else {})})
    ctx.tracker.end("FINISHED")
    plan_result = ctx.results.get("plan")
    special = ctx.results.get("specialize")
    return {"tracking_uri": ctx.tracker.tracking_uri, "registered_model": model.name if model else None,
            "version": model.version if model else None, "aliases": list(model.aliases) if model else [],
            "flow_run_id": ctx.run_info["flow_run_id"], "mlflow_run_id": ctx.tracker.run_id, "output_root": ctx.root,
            "stage_hashes": ctx.hashes, "stage_status": ctx.status,
            "counts": {k: c.row() for k, c in ctx.counts.items()},
            "plan": dump(plan_result) if plan_result else None,
            "gate": dump(evaluation.gate) if evaluation else None,
            "promotion": dump(model.promotion) if model and model.promotion else None,
            "realized_mix": special.realized_mix.domain_share if special else None,
            "export_max_abs_logit_diff": evaluation.specialized.max_abs_logit_diff if evaluation else None,
            "resumed_from_step": {k: r.resumed_from_step for k, r in ctx.results.items() if isinstance(r, TrainResult)},
            "attempts": {k: r.attempts for k, r in ctx.results.items() if isinstance(r, TrainResult)},
            "timings_s": {k: round(v, 2) for k, v in ctx.timings.items()},
            "elapsed_s": round(time.perf_counter() - t0, 2)}
