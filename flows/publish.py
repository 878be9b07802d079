"""What a run shows: MLflow metrics and artifacts per stage (from each stage's typed result) and the Prefect
artifacts of the run (curation funnel, contract reports, token budget, training summary, evaluation table,
registry entry). Presentation only: every figure here was computed by a stage.

Prefect artifacts are created in the flow body at the end of a run, so cached stages still publish them.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact as _markdown_artifact
from prefect.artifacts import create_table_artifact as _table_artifact

from tasks.core.secrets import redact_obj
from tasks.core.storage import StageDir, read_bytes
from tasks.curate.stage import CurateResult
from tasks.evaluate.stage import EvaluateResult
from tasks.govern.contracts import ContractError, ContractResult, report_markdown
from tasks.study.stage import ArmEval
from tasks.tokenize.stage import TokenizeResult
from tasks.train.plan import PlanResult, plan_markdown
from tasks.train.stage import TrainResult


def create_markdown_artifact(**kw):
    """A Prefect markdown artifact, with secrets masked (tasks/core/secrets.py)."""
    return _markdown_artifact(**redact_obj(kw))


def create_table_artifact(**kw):
    return _table_artifact(**redact_obj(kw))


def _artifact(tracker, sd: StageDir, rel: str, folder: str | None = None) -> None:
    """Log a stage file (local or remote) as an MLflow artifact under its own name."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / rel.rsplit("/", 1)[-1]
        local.write_bytes(read_bytes(sd.at(rel)))
        tracker.log_artifact(str(local), folder)


def log_stage(t, name: str, result: Any, sd: StageDir) -> None:
    """MLflow metrics, tags and artifacts of one stage's result (inside its nested run)."""
    counts = getattr(result, "counts", None)
    if counts is not None:
        t.log_metrics(counts.row())
    if isinstance(result, CurateResult):
        for s in result.funnel:
            t.log_metrics({f"funnel.{s.step}.in": s.received, f"funnel.{s.step}.kept": s.kept,
                           f"funnel.{s.step}.bytes_in": s.bytes_in})
        _artifact(t, sd, result.funnel_chart)
        t.log_text("\n".join(f"{s.step}: in {s.received}, kept {s.kept}, rejected {dict(s.rejected)}"
                             for s in result.funnel), "funnel.txt")
    elif isinstance(result, ArmEval):
        ev = result.evaluation
        t.log_metrics({f"{g}.{k}": v for g, sc in ev.groups.items() for k, v in (("ppl", sc.ppl), ("bpb", sc.bpb))
                       if v is not None} | {f"task.{k}.acc": v.acc for k, v in ev.tasks.items()}
                      | {"params": result.params, "tokens": result.tokens, "hap_rate": ev.hap_rate})
    elif isinstance(result, TokenizeResult):
        t.set_tags({"keel.tokenizer_sha256": result.tokenizer.sha256, "keel.ledger_uri": sd.at(result.ledger.path),
                    "keel.ledger_sha256": result.ledger.sha256})
        _artifact(t, sd, result.tokenizer.path, "tokenizer")
        t.log_metrics({f"decontaminated.{k.removeprefix('eval_contamination:')}": v
                       for k, v in result.decontaminated.items()})
        for task in result.evalsets:
            _artifact(t, sd, task.path, "evalsets")
    elif isinstance(result, PlanResult):
        t.log_metrics({k: getattr(result, k) for k in ("params", "unique_train_tokens", "unique_train_words",
                                                       "tokens_per_param", "words_per_param", "training_tokens",
                                                       "flops", "flops_with_attention")})
        t.log_text(plan_markdown(result), "plan.md")
    elif isinstance(result, TrainResult):
        for m in result.metrics:
            t.log_metrics({k: v for k, v in vars(m).items() if k != "step" and v is not None}, step=m.step)
        mix = result.realized_mix
        t.log_metrics({f"mix_share.{d}": v for d, v in mix.domain_share.items()})
        t.log_metrics({f"epochs.{s}": v.epochs for s, v in mix.sources.items()})
        t.set_tags({"keel.checkpoint": sd.at(result.checkpoint), "keel.checkpoint_manifest_sha256": result.checkpoint_manifest})
    elif isinstance(result, EvaluateResult):
        for model, res in result.models.items():
            t.log_metrics({f"{model}.hap_rate": res.hap_rate, f"{model}.export_max_abs_logit_diff": res.max_abs_logit_diff})
            for group, g in res.groups.items():
                t.log_metrics({f"{model}.{group}.{k}": getattr(g, k) for k in ("ppl", "bpb", "loss")
                               if getattr(g, k) is not None})
            for source, g in res.sources.items():
                t.log_metrics({f"{model}.source.{source}.{k}": getattr(g, k) for k in ("ppl", "bpb")
                               if getattr(g, k) is not None})
            for task, s in res.tasks.items():
                t.log_metrics({f"{model}.task.{task}.acc": s.acc, f"{model}.task.{task}.acc_stderr": s.acc_stderr})
        g = result.gate
        t.log_metrics({k: getattr(g, k) for k in ("domain_ppl_gain", "general_ppl_regression", "hap_rate")})
        _artifact(t, sd, result.comparison_md)
        _artifact(t, sd, result.comparison_png)
        if result.tasks_dir:
            for f in sorted(Path(sd.fetch(result.tasks_dir)).glob("*.yaml")):
                t.log_artifact(str(f), "lm_eval_tasks")
        t.log_dict({k: [vars(x) for x in v.generations] for k, v in result.models.items()}, "generations.json")
    elif isinstance(result, ContractResult):
        t.log_text(report_markdown(result.report, tuple(w.expectation for w in result.warnings)), f"{name}_report.md")


def contract_failure(t, name: str, exc: ContractError) -> None:
    """A failed contract's report, in MLflow and as a Prefect artifact, before the run stops."""
    t.log_text(exc.markdown, f"{name}_report.md")
    create_markdown_artifact(key=name.replace("_", "-"), markdown=exc.markdown, description=f"{name}: FAILED")


def tracking_links(tracker, model=None) -> str:
    """Where to look in MLflow: UI links for a tracking server, the `mlflow ui` command for a local store."""
    uri = tracker.tracking_uri
    if uri.startswith("http"):
        lines = [f"- MLflow run: {uri}/#/experiments/{tracker.experiment_id}/runs/{tracker.run_id}"]
        if model:
            lines.append(f"- Model version: {uri}/#/models/{model.name}/versions/{model.version}")
    else:
        lines = [f"- MLflow run `{tracker.run_id}` in `{uri}` (browse with `mlflow ui --backend-store-uri {uri}`)"]
        if model:
            lines.append(f"- Model `models:/{model.name}/{model.version}` aliases {list(model.aliases)}")
    return "\n".join(lines) + "\n"


def training_markdown(results: dict[str, Any], status: dict[str, str], tracker) -> str:
    rows = []
    for kind in ("pretrain", "specialize", "baseline"):
        r = results.get(kind)
        if not isinstance(r, TrainResult) or not r.metrics:
            continue
        m = r.metrics
        tps = [x.tokens_per_s for x in (m[1:] or m) if x.tokens_per_s]
        mfu = [x.mfu for x in m if x.mfu is not None]
        gpu = max((x.max_memory_gib or 0 for x in m), default=0)
        host = max((x.max_rss_gib or 0 for x in m), default=0)
        memory = f"{gpu:.1f} GiB GPU" if gpu else (f"{host:.2f} GiB host" if host else "n/a")
        rows.append(f"| {kind} | {len(m)} | {m[0].loss:.4f} | {m[-1].loss:.4f} | "
                    f"{(sum(tps) / len(tps)) if tps else 0:,.0f} | {(f'{100 * max(mfu):.1f}%') if mfu else 'n/a'} | "
                    f"{memory} | {status.get(kind, '')} |")
    if not rows:
        return ""
    head = ("| stage | steps | first loss | last loss | tokens/s (mean) | MFU (max) | peak memory (rank 0) | status |\n"
            "|---|---:|---:|---:|---:|---:|---:|---|\n")
    return "## Training\n\n" + head + "\n".join(rows) + "\n\n" + tracking_links(tracker)


def _decontamination_row(tok) -> list[dict]:
    """The tokenize stage's decontamination as the last step of the funnel."""
    if not isinstance(tok, TokenizeResult):
        return []
    c = tok.counts
    return [{"step": "decontaminate (tokenize)", "in": c.received, "kept": c.kept, "rejected": c.rejected,
             "top_reasons": ", ".join(f"{k}={v}" for k, v in sorted(tok.decontaminated.items(), key=lambda x: -x[1])[:3])}]


def run_artifacts(results: dict[str, Any], status: dict[str, str], tracker) -> None:
    """The Prefect artifacts of a run, from the results of its stages (cached ones included)."""
    cur = results.get("curate")
    if isinstance(cur, CurateResult):
        create_table_artifact(key="curation-funnel", description="Documents per curation step", table=[
            {"step": s.step, "in": s.received, "kept": s.kept, "rejected": sum(s.rejected.values()),
             "top_reasons": ", ".join(f"{k}={v}" for k, v in sorted(s.rejected.items(), key=lambda x: -x[1])[:3])}
            for s in cur.funnel] + _decontamination_row(results.get("tokenize")))
    for name, res in results.items():
        if isinstance(res, ContractResult):
            create_markdown_artifact(key=name.replace("_", "-"), markdown=report_markdown(
                res.report, tuple(w.expectation for w in res.warnings)))
    ev = results.get("evaluate")
    if isinstance(ev, EvaluateResult):
        create_table_artifact(key="evaluation", description="Held-out perplexity per domain, size, tokens, compute",
                              table=[{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in vars(row).items()}
                                     for row in ev.comparison])
        tasks = sorted({n for m in ev.models.values() for n in m.tasks})
        if tasks:
            create_table_artifact(key="downstream-tasks", description="Zero-shot accuracy (± standard error) per task",
                                  table=[{"task": n, **{m: f"{e.tasks[n].acc:.3f} ± {e.tasks[n].acc_stderr:.3f}"
                                                       for m, e in ev.models.items() if n in e.tasks}} for n in tasks])
    curves = training_markdown(results, status, tracker)
    if curves:
        create_markdown_artifact(key="training-curves", markdown=curves, description="Loss, throughput per training stage")
    plan = results.get("plan")
    if isinstance(plan, PlanResult):
        create_markdown_artifact(key="token-budget", markdown=plan_markdown(plan))


def registry_artifact(model, gate, tracker) -> None:
    p = model.promotion
    lines = [f"## {model.name} version {model.version}", "", f"aliases: {', '.join(model.aliases) or '-'}; "
             f"gate against its base: {'passed' if gate.promote else 'failed'}"]
    if p is not None:
        lines += ["", f"**champion-challenger** (against {'version ' + p.champion_version if p.champion_version else 'its base'}): "
                  f"{'took champion' if p.promote else 'did not take champion'}", "", *[f"- {r}" for r in p.reasons]]
        if p.champion_domain_ppl is not None:
            lines += ["", "| | domain ppl | general ppl |", "|---|---|---|",
                      f"| champion (version {p.champion_version}) | {p.champion_domain_ppl:.2f} | {p.champion_general_ppl:.2f} |",
                      f"| this version | {gate.special_domain_ppl:.2f} | {gate.special_general_ppl:.2f} |"]
    if gate.special_tasks:
        lines += ["", "| downstream task | base | this version |", "|---|---|---|"]
        lines += [f"| {n} | {gate.base_tasks[n].acc:.3f} ± {gate.base_tasks[n].acc_stderr:.3f} | {t.acc:.3f} ± "
                  f"{t.acc_stderr:.3f} |" if n in gate.base_tasks else f"| {n} | - | {t.acc:.3f} |"
                  for n, t in sorted(gate.special_tasks.items())]
    create_markdown_artifact(key="registered-model", description="Registry entry and champion decision",
                             markdown="\n".join(lines) + "\n\n" + tracking_links(tracker, model))
