"""The specialization study as a Prefect flow: the recipe's data stages once, then per seed the small model's base
pretraining, its continued pretraining at each domain share of [study].ratios, and the natural-mix baselines at
each of [study].compute_multiples; every model scored on the same held-out data; mean ± std per arm, the
frontier chart and the conclusion logged to the flow's MLflow run (each stage is a child run). Every arm is a
stage: a re-run reuses the finished ones and resumes the interrupted one.

  keel study --recipe infra/recipes/study_cyber.toml [--set study.seeds=[1]]
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from prefect import flow

from flows import publish
from flows.pipeline import data_stages, run_context
from flows.runner import run_stage
from tasks.evaluate.stage import EvalSettings
from tasks.study import arms
from tasks.study import stage as study_eval
from tasks.train import stage as train
from tasks.train.config import TrainSettings


@flow(name="keel-study", log_prints=True, validate_parameters=False)
def keel_study(recipe_path: str, overrides: list[str] | None = None) -> dict:
    t0 = time.perf_counter()
    with run_context(recipe_path, overrides) as ctx:
        r = ctx.recipe
        data = data_stages(ctx, r)
        tokenized, domain, s = data.tokenized, r.domain, r.study
        natural = arms.natural_mix(tokenized.datasets)
        ctx.logger.info(f"study: natural mixture of the curated training tokens {natural}; "
                        f"{len(s.seeds)} seeds x ({len(s.ratios)} ratios + {len(s.compute_multiples)} baselines)")
        scoring = EvalSettings(r.evaluate, r.curate.hap, domain)
        scores = []

        def scored(arm: str, seed: int, trained, before: int = 0) -> None:
            result = run_stage(ctx, study_eval.STAGE, scoring, study_eval.ArmInputs(tokenized, trained, before),
                               name=f"study_eval_{arm}_s{seed}")
            scores.append(result.score(arm, seed, domain))

        for seed in s.seeds:
            base = run_stage(ctx, train.STAGE, TrainSettings(r.model, r.pretrain, seed), train.TrainInputs(tokenized),
                             name=f"study_base_s{seed}")
            scored("base", seed, base)
            for ratio in s.ratios:
                arm = arms.ratio_arm(ratio)
                settings = arms.specialize_settings(r.model, r.specialize, domain, ratio, seed)
                special = run_stage(ctx, train.STAGE, settings, train.TrainInputs(tokenized, init_from=base),
                                    name=f"study_{arm}_s{seed}")
                scored(arm, seed, special, before=base.tokens)
            for multiple in s.compute_multiples:
                arm = arms.natural_arm(multiple)
                settings = arms.natural_settings(r.model, r.pretrain, r.specialize, r.baseline, tokenized.vocab_size,
                                                 multiple, natural, seed)
                scored(arm, seed, run_stage(ctx, train.STAGE, settings, train.TrainInputs(tokenized),
                                            name=f"study_{arm}_s{seed}"))
        result = _report(ctx, scores, domain, s.max_general_regression, natural, t0)
        return result


def _report(ctx, scores: list[arms.ArmScore], domain: str, max_general_regression: float, natural: dict,
            t0: float) -> dict:
    summary = arms.summarize(scores)
    conclusion = arms.conclude(summary, max_general_regression)
    table = arms.table_markdown(summary)
    text = arms.conclusion_text(conclusion, domain)
    out = Path(ctx.root) / "study" if "://" not in ctx.root else Path(tempfile.mkdtemp(prefix="keel-study-"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.md").write_text(f"# Specialization study: {domain}\n\n{table}\n{text}\n")
    arms.frontier_chart(summary, str(out / "study_frontier.png"), domain)
    figures = {"domain": domain, "natural_mix": natural, "conclusion": conclusion,
               "arms": [{"arm": a.arm, "seeds": a.seeds, "params": a.params, "flops": a.flops, "mean": a.mean,
                         "std": a.std} for a in summary],
               "runs": [s.__dict__ for s in scores]}
    (out / "study.json").write_text(json.dumps(figures, indent=1))
    t = ctx.tracker
    for name in ("study.md", "study_frontier.png", "study.json"):
        t.log_artifact(str(out / name))
    t.log_metrics({f"study.{a.arm}.{k}": v for a in summary for k, v in a.mean.items()}
                  | {f"study.{a.arm}.{k}_std": v for a in summary for k, v in a.std.items()})
    publish.create_markdown_artifact(key="specialization-study", markdown=f"# Specialization study: {domain}\n\n"
                                     f"{table}\n{text}\n", description="mean ± std over seeds per arm")
    t.set_tags({"keel.status": "completed", "keel.study.best_ratio": conclusion.get("best_ratio", "")})
    t.end("FINISHED")
    ctx.logger.info(f"study:\n{table}\n{text}")
    return {"tracking_uri": t.tracking_uri, "mlflow_run_id": t.run_id, "output_root": ctx.root,
            "flow_run_id": ctx.run_info["flow_run_id"], "stage_status": ctx.status, "report": str(out / "study.md"),
            "chart": str(out / "study_frontier.png"), **figures, "elapsed_s": round(time.perf_counter() - t0, 2)}
