"""The keel pipeline: the parent Prefect flow. It reads like the pipeline and holds no business logic.

legal gate -> ingest -> curate (Dask) -> contract (GX) -> tokenize -> pretrain -> specialize -> evaluate -> register
"""
from __future__ import annotations

import json
import os
import time

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows import stages
from flows.context import RunContext, retry_options
from flows.locks import output_root_lock
from flows.secrets import apply_secret_blocks
from model.config import load_recipe
from tasks import register as reg
from tasks.cluster import Cluster
from tasks.contracts import report_markdown
from tasks.tracking import Tracker, default_tracking_uri


@task(name="register", cache_policy=NO_CACHE)
def register(ctx: RunContext, sources: list, evaluation: dict) -> dict:
    r = ctx.recipe
    t = ctx.tracker
    name = r.run.registered_model
    key = ctx.hashes["evaluate"]
    with t.stage("register", tags={"keel.stage_hash": key}):
        version = t.find_version(name, "keel.register_hash", key)
        status = "cached"
        if version is None:
            info = t.log_pyfunc_model(reg.serving_code_path(), {"hf": evaluation["hf_dir"], "tokenizer": evaluation["tokenizer"]},
                                      name="model", registered=name, pip_requirements=reg.pip_requirements())
            version, status = info["version"], "completed"
            prov = [p for p in ctx.summaries["legal"]["approved"]]
            tags = reg.lineage_tags(ctx.hashes, prov, evaluation, str(flow_run.get_id()), t.run_id, ctx.counts, True)
            ledger = ctx.summaries["tokenize"]["ledger"]
            tags.update({"keel.ledger_uri": ledger["uri"], "keel.ledger_sha256": ledger["sha256"],
                         "keel.tokens_by_license": json.dumps(ledger["tokens_by_license"], sort_keys=True),
                         "keel.tokens_by_source": json.dumps(ledger["tokens_by_source"], sort_keys=True)})
            ui = flow_run.get_flow_run_ui_url()
            if ui:
                tags["keel.prefect_flow_run_url"] = ui
            t.tag_version(name, version, {**tags, "keel.register_hash": key}, reg.description(prov, evaluation))
            t.set_alias(name, "candidate", version)
            if evaluation["gate"]["promote"]:
                t.set_alias(name, "champion", version)
        t.set_tags({"keel.status": status, "keel.model_version": version})
    ctx.status["register"] = status
    ctx.hashes["register"] = key
    return {"name": name, "version": str(version), "aliases": t.aliases(name, version)}


def _artifacts(ctx: RunContext) -> None:
    """Prefect artifacts are created in the flow body so cached stages still publish them."""
    cur = ctx.summaries.get("curate")
    if cur:
        create_table_artifact(key="curation-funnel", description="Documents per curation step",
                              table=[{"step": s["step"], "in": s["in"], "kept": s["kept"],
                                      "rejected": sum(s["rejected"].values()),
                                      "top_reasons": ", ".join(f"{k}={v}" for k, v in sorted(s["rejected"].items(), key=lambda x: -x[1])[:3])}
                                     for s in cur["funnel"]])
    for name in ("contract_raw", "contract_curated", "contract_tokenized", "contract_mix_specialize"):
        if ctx.summaries.get(name):
            create_markdown_artifact(key=name.replace("_", "-"), markdown=report_markdown(ctx.summaries[name]["report"]))
    ev = ctx.summaries.get("evaluate")
    if ev and ev.get("comparison"):
        create_table_artifact(key="evaluation", description="Held-out perplexity per domain, size, tokens, compute",
                              table=[{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}
                                     for row in ev["comparison"]])
    curves = training_markdown(ctx)
    if curves:
        create_markdown_artifact(key="training-curves", markdown=curves, description="Loss, throughput per training stage")
    if ctx.summaries.get("plan"):
        from tasks.plan import plan_markdown

        create_markdown_artifact(key="token-budget", markdown=plan_markdown(ctx.summaries["plan"]))


def training_markdown(ctx: RunContext) -> str:
    rows = []
    for kind in ("pretrain", "specialize", "baseline"):
        m = (ctx.summaries.get(kind) or {}).get("metrics") or []
        if not m:
            continue
        tps = [x["tokens_per_s"] for x in m[1:] or m if x.get("tokens_per_s")]
        mfu = [x["mfu"] for x in m if x.get("mfu") is not None]
        gpu = max((x.get("max_memory_gib") or 0 for x in m), default=0)
        host = max((x.get("max_rss_gib") or 0 for x in m), default=0)
        memory = f"{gpu:.1f} GiB GPU" if gpu else (f"{host:.2f} GiB host" if host else "n/a")
        rows.append(f"| {kind} | {len(m)} | {m[0]['loss']:.4f} | {m[-1]['loss']:.4f} | "
                    f"{(sum(tps) / len(tps)) if tps else 0:,.0f} | {(f'{100 * max(mfu):.1f}%') if mfu else 'n/a'} | "
                    f"{memory} | {ctx.status.get(kind, '')} |")
    if not rows:
        return ""
    head = ("| stage | steps | first loss | last loss | tokens/s (mean) | MFU (max) | peak memory (rank 0) | status |\n"
            "|---|---:|---:|---:|---:|---:|---:|---|\n")
    return "## Training\n\n" + head + "\n".join(rows) + "\n\n" + tracking_links(ctx)


def tracking_links(ctx: RunContext, model: dict | None = None) -> str:
    """Where to look in MLflow: UI links for a tracking server, the `mlflow ui` command for a local store."""
    uri, t = ctx.tracker.tracking_uri, ctx.tracker
    if uri.startswith("http"):
        lines = [f"- MLflow run: {uri}/#/experiments/{t.experiment_id}/runs/{t.run_id}"]
        if model:
            lines.append(f"- Model version: {uri}/#/models/{model['name']}/versions/{model['version']}")
    else:
        lines = [f"- MLflow run `{t.run_id}` in `{uri}` (browse with `mlflow ui --backend-store-uri {uri}`)"]
        if model:
            lines.append(f"- Model `models:/{model['name']}/{model['version']}` aliases {model.get('aliases', [])}")
    return "\n".join(lines) + "\n"


UNTIL = ("", "legal", "ingest", "curate", "tokenize", "plan")


@flow(name="keel-pipeline", log_prints=True, validate_parameters=False)
def keel_pipeline(recipe_path: str, overrides: list[str] | None = None, until: str = "") -> dict:
    """Run the recipe; `until` stops after a data stage (legal, ingest, curate, tokenize or plan)."""
    if until not in UNTIL:
        raise ValueError(f"until must be one of {UNTIL}, not {until!r}")
    logger = get_run_logger()
    t0 = time.perf_counter()
    recipe = load_recipe(recipe_path, overrides or [])
    applied = apply_secret_blocks(recipe.run.secret_blocks)
    if applied:
        logger.info(f"environment from Secret blocks {recipe.run.secret_blocks}: {sorted(applied)} (values hidden)")
    tracker = Tracker(recipe.run.tracking_uri or default_tracking_uri(), recipe.run.name, run_name=recipe.run.name,
                      tags={"keel.recipe": recipe_path, "keel.prefect_flow_run_id": str(flow_run.get_id())})
    cluster = Cluster(recipe.dask.address or os.environ.get("KEEL_DASK_ADDRESS", ""), recipe.dask.n_workers,
                      recipe.dask.memory_limit, logger)
    ctx = RunContext(recipe, tracker, cluster, logger)
    st = _Retrying(retry_options(recipe.run.retries, recipe.run.retry_delay_s))
    try:
        tracker.log_params({"recipe": recipe.to_dict()})
        tracker.log_dict(recipe.to_dict(), "recipe.json")
        with output_root_lock(ctx.root):
            sources = st.legal_gate(ctx)
            if until == "legal":
                return _summary(ctx, None, None, t0)
            ingested = st.ingest(ctx, sources)
            st.contract_raw(ctx, ingested, sources)
            if until == "ingest":
                return _summary(ctx, None, None, t0)
            curated = st.curate(ctx, ingested)
            st.contract_curated(ctx, curated)
            if until == "curate":
                return _summary(ctx, None, None, t0)
            tokenized = st.tokenize(ctx, curated, sources)
            st.contract_tokenized(ctx, tokenized)
            st.plan_budget(ctx, tokenized)
            if until in ("tokenize", "plan"):
                return _summary(ctx, None, None, t0)
            return _train_and_register(ctx, st, sources, tokenized, t0)
    except BaseException:
        tracker.end("FAILED")
        raise
    finally:
        cluster.close()


def _train_and_register(ctx: RunContext, st, sources, tokenized: dict, t0: float) -> dict:
    recipe = ctx.recipe
    base = st.pretrain(ctx, tokenized)
    special = st.specialize(ctx, tokenized, base)
    st.contract_mix(ctx, special, "specialize")
    general_baseline = st.baseline(ctx, tokenized) if recipe.baseline.enabled else None
    domain = _specialization_domain(recipe)
    evaluation = st.evaluate(ctx, tokenized, base, special, domain, general_baseline)
    model = register(ctx, sources, evaluation)
    return _summary(ctx, model, evaluation, t0) | {
        "realized_mix": special["result"]["realized_mix"]["domain_share"],
        "export_max_abs_logit_diff": evaluation["results"]["specialized"]["export"]["max_abs_logit_diff"]}


class _Retrying:
    """`st.<stage>` is the Prefect task of flows/stages.py with the recipe's retry policy."""

    def __init__(self, options: dict):
        self.options = options

    def __getattr__(self, name: str):
        return getattr(stages, name).with_options(**self.options)


def _summary(ctx: RunContext, model: dict | None, evaluation: dict | None, t0: float) -> dict:
    _artifacts(ctx)
    if model:
        gate = evaluation["gate"] if evaluation else {}
        create_markdown_artifact(key="registered-model", description="Registry entry and gate decision", markdown=(
            f"## {model['name']} version {model['version']}\n\naliases: {', '.join(model['aliases']) or '-'}; "
            f"gate: {'promoted' if gate.get('promote') else 'not promoted'}\n\n" + tracking_links(ctx, model)))
    ctx.tracker.set_tags({"keel.status": "completed", **({"keel.model_version": model["version"]} if model else {})})
    ctx.tracker.end("FINISHED")
    model = model or {}
    return {"tracking_uri": ctx.tracker.tracking_uri, "registered_model": model.get("name"),
            "version": model.get("version"), "aliases": model.get("aliases", []),
            "flow_run_id": str(flow_run.get_id()), "mlflow_run_id": ctx.tracker.run_id, "output_root": ctx.root,
            "stage_hashes": ctx.hashes, "stage_status": ctx.status, "counts": ctx.counts,
            "plan": ctx.summaries.get("plan"), "gate": evaluation["gate"] if evaluation else None,
            "timings_s": {k: round(v, 2) for k, v in ctx.timings.items()},
            "elapsed_s": round(time.perf_counter() - t0, 2)}


def _specialization_domain(recipe) -> str:
    domains = [d for d, w in recipe.specialize.mix.items() if d != "general" and w > 0]
    if len(domains) != 1:
        raise ValueError("[specialize].mix must name exactly one domain besides 'general', e.g. "
                         "{cybersecurity = 0.5, general = 0.5}")
    return domains[0]
