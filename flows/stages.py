"""One Prefect task per pipeline stage. Each is thin: it picks its config, names its upstream stages and
code, and calls the pure stage function inside `run_stage` (caching, MLflow, counts)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.context import RunContext, run_stage
from model.presets import resolve_spec
from tasks import contracts, curate as curate_mod, ingest as ingest_mod, legal, tokenize as tok_mod
from tasks.cluster import list_parts
from tasks.evaluate import evaluate_checkpoint, gate, hap_rate
from tasks.lineage import build_ledger
from tasks.readers import list_files
from tasks.storage import is_remote, url_to_fs
from tasks.train import train

STAGE = dict(cache_policy=NO_CACHE, retries=0)


def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


@task(name="legal_gate", **STAGE)
def legal_gate(ctx: RunContext) -> list[legal.SourceManifest]:
    r = ctx.recipe
    policy = legal.load_policy(r.legal.policy)  # opt-outs act at document level, in curation
    approved = legal.gate_sources(r.sources.ids, r.sources.manifests, r.sources.data_root, policy, r.legal.intended_use)
    config = {"legal": r.section_dict("legal"), "policy": _file_hash(r.legal.policy),
              "manifests": {m.id: _file_hash(m.path) for m in approved}}
    run_stage(ctx, "legal", config, [], ["tasks.legal"], lambda sd: {
        "approved": [m.provenance() for m in approved], "intended_use": r.legal.intended_use,
        "allowed_licenses": sorted(policy.allowed_licenses(r.legal.intended_use))})
    return approved


def _fingerprint(uri: str, fmt: str) -> list:
    fs, _ = url_to_fs(uri)
    out = []
    for f in list_files(uri, fmt):
        info = fs.info(url_to_fs(f)[1])
        out.append([f, info.get("size"), str(info.get("mtime") or info.get("ETag") or info.get("LastModified"))])
    return out


@task(name="ingest", **STAGE)
def ingest(ctx: RunContext, sources: list[legal.SourceManifest]) -> dict:
    r = ctx.recipe
    config = {"sources": [m.provenance() | {"uri": m.data_uri, "format": m.format} for m in sources],
              "data": {m.id: _fingerprint(m.data_uri, m.format) for m in sources},
              "max_doc_bytes": r.sources.max_doc_bytes, "partition_rows": r.dask.partition_rows}
    return run_stage(ctx, "ingest", config, ["legal"], ["tasks.ingest", "tasks.readers"],
                     lambda sd: ingest_mod.ingest(sources, sd, ctx.cluster, r.dask.partition_rows, r.sources.max_doc_bytes))


def curate_config(r):
    """[curate] plus the legal settings its document-level policy rule needs (absolute paths)."""
    import dataclasses

    optout = Path(r.legal.optout).resolve()
    return dataclasses.replace(r.curate, policy_path=str(Path(r.legal.policy).resolve()), optout_path=str(optout),
                               intended_use=r.legal.intended_use, ut1_blocklist=r.legal.ut1_blocklist)


@task(name="curate", **STAGE)
def curate(ctx: RunContext, ingested: dict) -> dict:
    import dataclasses

    r = ctx.recipe
    docs = ingested["uri"] + "/docs"
    cfg = curate_config(r)
    optout = Path(cfg.optout_path)
    config = dataclasses.asdict(cfg) | {"policy_sha": _file_hash(cfg.policy_path),
                                        "optout_sha": _file_hash(str(optout)) if optout.is_file() else ""}
    for k in ("policy_path", "optout_path"):
        config.pop(k)
    def log_funnel(summary):
        import tempfile

        from tasks.study import funnel_chart

        for s in summary["funnel"]:
            ctx.tracker.log_metrics({f"funnel.{s['step']}.in": s["in"], f"funnel.{s['step']}.kept": s["kept"],
                                     f"funnel.{s['step']}.bytes_in": s["bytes_in"]})
        with tempfile.TemporaryDirectory() as tmp:
            ctx.tracker.log_artifact(funnel_chart(summary["funnel"], f"{tmp}/curation_funnel.png"))

    out = run_stage(ctx, "curate", config, ["ingest"],
                    ["tasks.curate", "tasks.curation", "tasks.rules", "tasks.filters_web", "tasks.pii",
                     "tasks.hap", "tasks.minhash", "tasks.policy_rule"], lambda sd: curate_mod.curate(docs, sd, ctx.cluster, cfg),
                    log_funnel)
    assert out["counts"]["in"] == ingested["counts"]["kept"], "documents lost between ingest and curate"
    return out


@task(name="contract_raw", **STAGE)
def contract_raw(ctx: RunContext, ingested: dict, sources: list[legal.SourceManifest]) -> dict:
    """Raw documents straight from ingest. Duplicate ids are reported here and removed by curation, so only
    the per-partition expectations block; global uniqueness is recorded as a warning."""
    suite_path = Path(ctx.recipe.contracts.expectations) / "raw.json"
    suite = contracts.load_suite_json(suite_path, {"$source_ids": sorted(m.id for m in sources)})

    def run(sd):
        report = contracts.validate_parts(list_parts(ingested["uri"] + "/docs"), suite, ctx.cluster)
        blocking = [r for r in report["results"] if not r["success"] and not r["expectation"].startswith("global:unique")]
        md = contracts.report_markdown(report)
        url_to_fs(sd.path("report.md"))[0].pipe_file(url_to_fs(sd.path("report.md"))[1], md.encode())
        if blocking:
            ctx.tracker.log_text(md, "contract_raw_report.md")
            raise contracts.ContractError(f"data contract 'raw' failed; downstream stages stopped.\n{md}")
        return {"report": report, "warnings": [r for r in report["results"] if not r["success"]],
                "counts": {"in": report["rows"], "kept": report["rows"], "rejected": 0}}

    return run_stage(ctx, "contract_raw", {"suite": suite}, ["ingest"], ["tasks.contracts"], run)


@task(name="contract_curated", **STAGE)
def contract_curated(ctx: RunContext, curated: dict) -> dict:
    r = ctx.recipe
    suite_path = Path(r.contracts.expectations) / "curated.json"
    allowed = ctx.summaries["legal"]["allowed_licenses"]
    suite = contracts.load_suite_json(suite_path, {"$allowed_licenses": allowed, "$languages": r.curate.languages,
                                                    "$hap_threshold": r.curate.hap_threshold})

    def run(sd):
        report = contracts.validate_parts(list_parts(curated["uri"] + "/data"), suite, ctx.cluster)
        md = contracts.report_markdown(report)
        url_to_fs(sd.path("report.md"))[0].pipe_file(url_to_fs(sd.path("report.md"))[1], md.encode())
        if not report["success"]:
            ctx.tracker.log_text(md, "contract_curated_report.md")
            raise contracts.ContractError(f"data contract 'curated' failed; downstream stages stopped.\n{md}")
        return {"report": report, "counts": {"in": report["rows"], "kept": report["rows"], "rejected": 0}}

    return run_stage(ctx, "contract_curated", {"suite": suite, "suite_file": str(suite_path)}, ["curate"],
                     ["tasks.contracts"], run)


@task(name="tokenize", **STAGE)
def tokenize(ctx: RunContext, curated: dict, sources: list[legal.SourceManifest]) -> dict:
    r = ctx.recipe
    domains = {m.id: m.domain for m in sources}
    licenses = {m.id: m.license for m in sources}
    config = r.section_dict("tokenize")
    if r.tokenize.tokenizer_path:
        config["tokenizer_sha"] = hashlib.sha256(url_to_fs(r.tokenize.tokenizer_path)[0].cat_file(
            url_to_fs(r.tokenize.tokenizer_path)[1])).hexdigest()

    def run(sd):
        parts = list_parts(curated["uri"] + "/data")
        manifest = tok_mod.tokenize(parts, sd.uri, ctx.cluster, r.tokenize, domains, licenses)
        n_docs = sum(d["num_docs"] for d in manifest["datasets"])
        ledger = build_ledger(parts, manifest["doc_index"], list(r.curate.steps), sd.path("ledger.parquet"), ctx.cluster)
        return {"manifest": manifest, "ledger": ledger,
                "counts": {"in": curated["counts"]["kept"], "kept": n_docs, "rejected": curated["counts"]["kept"] - n_docs}}

    def log_tokenizer(summary):
        import tempfile

        tok = summary["manifest"]["tokenizer"]
        ctx.tracker.set_tags({"keel.tokenizer_sha256": tok["sha256"], "keel.ledger_uri": summary["ledger"]["uri"]})
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "tokenizer.json"
            local.write_bytes(url_to_fs(tok["path"])[0].cat_file(url_to_fs(tok["path"])[1]))
            ctx.tracker.log_artifact(str(local), "tokenizer")

    out = run_stage(ctx, "tokenize", config, ["curate", "contract_curated"], ["tasks.tokenize", "tasks.lineage"], run,
                    log_tokenizer)
    assert out["counts"]["rejected"] == 0, "documents lost in tokenization"
    return out


def check_contract(ctx: RunContext, suite_name: str, frame, subs: dict | None = None) -> dict:
    """Validate a small frame on the driver against data_contracts/expectations/<suite_name>.json."""
    import pandas as pd

    suite = contracts.load_suite_json(Path(ctx.recipe.contracts.expectations) / f"{suite_name}.json", subs or {})
    res = contracts.validate_frame(pd.DataFrame(frame), suite)
    report = {"suite": suite_name, "success": res["success"], "rows": res["rows"], "partitions": 1,
              "results": res["results"]}
    if not res["success"]:
        md = contracts.report_markdown(report)
        ctx.tracker.log_text(md, f"contract_{suite_name}_report.md")
        raise contracts.ContractError(f"data contract '{suite_name}' failed; downstream stages stopped.\n{md}")
    return report


@task(name="contract_tokenized", **STAGE)
def contract_tokenized(ctx: RunContext, tokenized: dict) -> dict:
    m = tokenized["manifest"]
    rows = [{**{k: d[k] for k in ("source_id", "split", "num_docs", "num_tokens", "max_token_id")},
             "vocab_size": m["vocab_size"]} for d in m["datasets"]]
    report = check_contract(ctx, "tokenized", rows)
    ctx.summaries["contract_tokenized"] = {"report": report}
    return report


@task(name="plan", **STAGE)
def plan_budget(ctx: RunContext, tokenized: dict) -> dict:
    from tasks.plan import plan, plan_markdown

    r = ctx.recipe
    spec = resolve_spec(r.section_dict("model"), tokenized["manifest"]["vocab_size"])
    p = plan(spec, tokenized["manifest"]["datasets"], {k: r.section_dict(k) for k in ("pretrain", "specialize")},
             r.plan.min_words_per_param, r.plan.max_epochs)
    for w in p["warnings"]:
        ctx.logger.warning(f"plan: {w}")
    with ctx.tracker.stage("plan"):
        ctx.tracker.log_metrics({k: v for k, v in p.items() if isinstance(v, (int, float))})
        ctx.tracker.log_text(plan_markdown(p), "plan.md")
    ctx.summaries["plan"] = p
    if r.plan.strict and p["warnings"]:
        raise ValueError("token-budget plan refused ([plan].strict = true):\n  - " + "\n  - ".join(p["warnings"]))
    return p


@task(name="contract_mix", **STAGE)
def contract_mix(ctx: RunContext, trained: dict, kind: str) -> dict:
    mix = trained["result"]["realized_mix"]["domain_share"]
    planned = trained["result"]["planned_mix"]
    rows = [{"domain": d, "planned": planned.get(d, 0.0), "realized": mix.get(d, 0.0),
             "abs_diff": abs(planned.get(d, 0.0) - mix.get(d, 0.0))} for d in sorted(set(mix) | set(planned))]
    report = check_contract(ctx, "mix", rows)
    ctx.summaries[f"contract_mix_{kind}"] = {"report": report}
    return report


def _local_dir(ctx: RunContext, stage_uri: str) -> str:
    """Training writes locally: the stage folder itself, or a scratch copy when the output root is remote."""
    if not is_remote(stage_uri):
        return stage_uri
    return str(Path(".keel/scratch").resolve() / stage_uri.split("://", 1)[1])


def _local_manifest(ctx: RunContext, manifest: dict) -> dict:
    """Megatron reads datasets from local files: fetch remote ones into a cache keyed by the tokenize hash."""
    if not any(is_remote(d["prefix"]) for d in manifest["datasets"]):
        return manifest
    cache = Path(".keel/cache/datasets").resolve() / ctx.hashes["tokenize"]
    out = json.loads(json.dumps(manifest))
    for d in out["datasets"]:
        local = cache / d["prefix"].rsplit("/", 1)[1]
        if not Path(str(local) + ".idx").is_file():
            fs, path = url_to_fs(d["prefix"])
            cache.mkdir(parents=True, exist_ok=True)
            for ext in (".bin", ".idx"):
                fs.get_file(path + ext, str(local) + ext)
        d["prefix"] = str(local)
    return out


def _train_stage(ctx: RunContext, kind: str, tokenized: dict, init_from: str, upstream: list[str],
                 model_section: dict | None = None, train_cfg: dict | None = None) -> dict:
    r = ctx.recipe
    manifest = tokenized["manifest"]
    model_section = model_section or r.section_dict("model")
    spec = resolve_spec(model_section, manifest["vocab_size"])
    train_cfg = train_cfg or r.section_dict(kind)
    config = {"model": model_section, kind: train_cfg, "seed": r.run.seed}

    def run(sd):
        local = _local_dir(ctx, sd.uri)
        out = train(kind, local, spec, train_cfg, _local_manifest(ctx, manifest), r.run.seed, init_from,
                    log=lambda line: ctx.logger.info(f"[{kind}] {line}"), bf16=r.model.bf16)
        if is_remote(sd.uri):
            fs, path = url_to_fs(sd.uri)
            fs.put(local.rstrip("/") + "/", path, recursive=True)
        res = out["result"]
        return {"result": res, "local_dir": local, "checkpoint": res["checkpoint"], "spec": spec.__dict__,
                "final_loss": res["final_loss"], "metrics": out["metrics"]}

    def log_fn(summary):
        for m in summary["metrics"]:
            ctx.tracker.log_metrics({k: v for k, v in m.items() if k != "step"}, step=m["step"])
        mix = summary["result"]["realized_mix"]
        ctx.tracker.log_metrics({f"mix_share.{d}": v for d, v in mix["domain_share"].items()})
        ctx.tracker.log_metrics({f"epochs.{s}": v["epochs"] for s, v in mix["sources"].items()})
        ctx.tracker.set_tags({"keel.checkpoint": summary["checkpoint"]})

    return run_stage(ctx, kind, config, upstream, ["model.train", "model.gpt", "model.data", "model.checkpoint",
                                                   "model.cpu_compat", "tasks.train"], run, log_fn)


@task(name="pretrain", **STAGE)
def pretrain(ctx: RunContext, tokenized: dict) -> dict:
    return _train_stage(ctx, "pretrain", tokenized, "", ["tokenize"])


@task(name="specialize", **STAGE)
def specialize(ctx: RunContext, tokenized: dict, base: dict) -> dict:
    return _train_stage(ctx, "specialize", tokenized, base["checkpoint"], ["tokenize", "pretrain"])


@task(name="baseline", **STAGE)
def baseline(ctx: RunContext, tokenized: dict) -> dict:
    """A general-only model (usually larger) trained on as many tokens as pretrain + specialize together."""
    import math

    r = ctx.recipe
    b = r.baseline
    sequences = r.pretrain.steps * r.pretrain.global_batch_size + r.specialize.steps * r.specialize.global_batch_size
    model_section = r.section_dict("model") | {"preset": b.preset or r.model.preset, "num_layers": b.num_layers,
                                               "hidden_size": b.hidden_size, "num_attention_heads": b.num_attention_heads}
    train_cfg = r.section_dict("pretrain") | {
        "steps": math.ceil(sequences / b.global_batch_size), "global_batch_size": b.global_batch_size,
        "micro_batch_size": b.micro_batch_size, "lr": b.lr, "min_lr": b.min_lr, "warmup_steps": b.warmup_steps,
        "mix": {"general": 1.0}}
    return _train_stage(ctx, "baseline", tokenized, "", ["tokenize"], model_section, train_cfg)


@task(name="evaluate", **STAGE)
def evaluate(ctx: RunContext, tokenized: dict, base: dict, special: dict, domain: str,
             general_baseline: dict | None = None) -> dict:
    from model.presets import ModelSpec
    from tasks.study import chart, comparison_rows, table_markdown

    r = ctx.recipe
    manifest = tokenized["manifest"]
    spec = resolve_spec(r.section_dict("model"), manifest["vocab_size"])
    models = {"base": (base["checkpoint"], spec), "specialized": (special["checkpoint"], spec)}
    trained = {"base": base, "specialized": special}
    if general_baseline:
        models["baseline"] = (general_baseline["checkpoint"], ModelSpec(**general_baseline["spec"]))
        trained["baseline"] = general_baseline

    def run(sd):
        local = _local_dir(ctx, sd.uri)
        tok_local = str(Path(local) / "tokenizer.json")
        Path(local).mkdir(parents=True, exist_ok=True)
        Path(tok_local).write_bytes(url_to_fs(manifest["tokenizer"]["path"])[0].cat_file(
            url_to_fs(manifest["tokenizer"]["path"])[1]))
        lm = _local_manifest(ctx, manifest)
        results = {name: evaluate_checkpoint(name, local, sp, ckpt, lm, tok_local, r.evaluate.max_sequences,
                                             log=lambda line: ctx.logger.info(f"[evaluate] {line}"))
                   for name, (ckpt, sp) in models.items()}
        from tasks.hap import hap_scores

        for res in results.values():  # every model's sample generations, scored
            scores = hap_scores([g["completion"] for g in res["generations"]])
            for g, sc in zip(res["generations"], scores):
                g["hap_score"] = float(sc)
            res["hap_rate"] = float((scores >= r.curate.hap_threshold).mean()) if len(scores) else 0.0
        rate = hap_rate(results["specialized"], r.curate.hap_threshold)
        # reaching this stage means every contract and the legal gate passed (a failure stops the flow)
        data_ok = all(ctx.summaries.get(k, {}).get("report", {}).get("success", False)
                      for k in ("contract_curated", "contract_tokenized", "contract_mix_specialize"))
        decision = gate(results["base"], results["specialized"], domain, r.evaluate.min_domain_improvement,
                        r.evaluate.max_general_regression, data_ok=data_ok, hap_rate=rate,
                        max_hap_rate=r.evaluate.max_hap_rate)
        if is_remote(sd.uri):
            fs, path = url_to_fs(sd.uri)
            fs.put(local.rstrip("/") + "/", path, recursive=True)
        # tokens each model saw: the specialized model saw pretrain + specialize tokens
        seen = {k: v["result"]["realized_mix"]["tokens"] for k, v in trained.items()}
        seen["specialized"] += seen["base"]
        rows = comparison_rows(results, {k: sp for k, (_, sp) in models.items()}, seen, domain)
        table = table_markdown(rows)
        Path(local, "comparison.md").write_text(table)
        chart(rows, str(Path(local, "comparison.png")))
        return {"results": results, "gate": decision, "local_dir": local, "tokenizer": tok_local,
                "hf_dir": results["specialized"]["export"]["hf_dir"], "comparison": rows, "comparison_md": table}

    def log_fn(summary):
        for name, res in summary["results"].items():
            ctx.tracker.log_metrics({f"{name}.hap_rate": res.get("hap_rate", 0.0)})
            for group, m in res["groups"].items():
                ctx.tracker.log_metrics({f"{name}.{group}.{k}": v for k, v in m.items() if k in ("ppl", "bpb", "loss")})
        ctx.tracker.log_metrics({k: v for k, v in summary["gate"].items() if isinstance(v, float)})
        ctx.tracker.log_text(summary["comparison_md"], "comparison.md")
        ctx.tracker.log_artifact(str(Path(summary["local_dir"], "comparison.png")))
        ctx.tracker.log_dict({k: v["generations"] for k, v in summary["results"].items()}, "generations.json")

    upstream = ["pretrain", "specialize"] + (["baseline"] if general_baseline else [])
    return run_stage(ctx, "evaluate", r.section_dict("evaluate") | {"hap_threshold": r.curate.hap_threshold},
                     upstream, ["model.evaluate", "model.hf_export", "tasks.evaluate", "tasks.hap"],
                     run, log_fn)
