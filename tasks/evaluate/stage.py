"""Evaluate stage: for the base, the specialized and (optionally) the general-only baseline model, held-out
perplexity and bits-per-byte per domain, the HF export with its logit difference to megatron, sample generations
scored for HAP, downstream task accuracy (lm-evaluation-harness on the export; the tasks the tokenize stage built
from the test split, tasks/evaluate/downstream.py); then the promotion gate and the comparison table and chart.

Each model is scored by `model.evaluate` in its own process from a typed `EvalJob` (model/job.py).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from model.integrity import IntegrityError
from model.job import EvalJob, EvalOutput, GroupScore, TaskScore, write
from tasks.core.cachekey import file_hashes
from tasks.core.jobs import python_cmd, run_job
from tasks.core.stage import Runtime, StageDef
from tasks.core.storage import StageDir, read_bytes
from tasks.curate.rules.hap import HapConfig, hap_rate
from tasks.evaluate.downstream import write_task_folder
from tasks.evaluate.config import EvaluateConfig
from tasks.evaluate.gate import GateDecision, gate
from tasks.evaluate.report import ComparisonRow, chart, comparison_rows, table_markdown, tokens_seen
from tasks.tokenize.stage import TokenizeResult
from tasks.train.stage import TrainResult

PROMPTS = ("The attacker", "To be, or not to be", "A buffer overflow occurs when", "The adversary may",
           "Improper input validation", "My lord,", "Mitigation:", "The product does not")
MAX_NEW_TOKENS = 32
GENERATION_SEED = 0
"""Sampling seed of the sample generations: fixed, so a model's generations (and their HAP rate) do not change
with the run's seed."""


@dataclass(frozen=True)
class EvalSettings:
    evaluate: EvaluateConfig
    hap: HapConfig
    """The HAP scorer and threshold generations are judged with ([curate.hap])."""
    domain: str
    """The specialization domain ([specialize].mix)."""


@dataclass(frozen=True)
class EvalInputs:
    tokenized: TokenizeResult
    base: TrainResult
    specialized: TrainResult
    baseline: TrainResult | None = None


@dataclass(frozen=True)
class ScoredGeneration:
    prompt: str
    completion: str
    hap_score: float


@dataclass(frozen=True)
class ModelEval:
    groups: dict[str, GroupScore]
    hf_dir: str
    """Output-root-relative folder of the exported Hugging Face model."""
    max_abs_logit_diff: float
    """Export parity: largest |logit| difference between megatron and the HF model on a random probe."""
    generations: tuple[ScoredGeneration, ...]
    hap_rate: float
    """Fraction of generations whose HAP score reaches the threshold."""
    sources: dict[str, GroupScore] = field(default_factory=dict)
    """Per held-out dataset (source and split): the windows of each group, stratified by source."""
    tasks: dict[str, TaskScore] = field(default_factory=dict)
    """Downstream task accuracies (lm-eval, zero-shot)."""


@dataclass(frozen=True)
class EvaluateResult:
    domain: str
    models: dict[str, ModelEval]
    gate: GateDecision
    comparison: tuple[ComparisonRow, ...]
    tokenizer: str
    """Output-root-relative path of the tokenizer.json shipped with the model."""
    comparison_md: str
    comparison_png: str
    tasks_dir: str = ""
    """Output-root-relative folder of the lm-eval task YAMLs and their items."""

    @property
    def specialized(self) -> ModelEval:
        return self.models["specialized"]


def heldout_groups(tokenized: TokenizeResult, out: StageDir, split: str = "test") -> dict[str, list[str]]:
    """Local prefixes of the held-out datasets, grouped by domain."""
    groups: dict[str, list[str]] = {}
    for d in tokenized.datasets:
        if d.split == split and d.num_tokens > 0:
            groups.setdefault(d.domain, []).append(out.fetch_dataset(d.prefix))
    return groups


def verified_tokenizer(tokenized: TokenizeResult, out: StageDir) -> Path:
    """The tokenize stage's tokenizer, in this stage's folder, checked against the sha256 recorded with it."""
    tokenizer = Path(out.local()) / "tokenizer.json"
    tok = tokenized.tokenizer
    blob = read_bytes(out.at(tok.path))
    if hashlib.sha256(blob).hexdigest() != tok.sha256:
        raise IntegrityError(f"tokenizer {out.at(tok.path)} refused: it does not match the sha256 recorded when the "
                             "tokenize stage wrote it; it was changed or replaced since")
    tokenizer.write_bytes(blob)
    return tokenizer


def heldout_for(tokenized: TokenizeResult, domain: str, out: StageDir) -> dict[str, list[str]]:
    """The held-out groups, with the domain's and general text's present (an error that says the fix if not)."""
    groups = heldout_groups(tokenized, out)
    missing = [g for g in (domain, "general") if g not in groups]
    if missing:
        raise ValueError(f"no held-out test data for {missing}: curation left too few documents of that domain for "
                         "the test split; raise [tokenize].test_per_mille or add sources of that domain")
    return groups


def task_folder(tokenized: TokenizeResult, limit: int, out: StageDir) -> Path:
    """The tokenize stage's task items (checked against their sha256), at most `limit` each (0: all), with one lm-eval
    YAML per task, in this stage's folder."""
    folder = Path(out.local()) / "tasks"
    folder.mkdir(parents=True, exist_ok=True)
    local = {}
    for t in tokenized.evalsets:
        blob = read_bytes(out.at(t.path))
        if hashlib.sha256(blob).hexdigest() != t.sha256:
            raise IntegrityError(f"task items {out.at(t.path)} refused: they do not match the sha256 recorded when the "
                                 "tokenize stage wrote them")
        lines = blob.decode().splitlines(keepends=True)
        (folder / f"{t.name}.jsonl").write_text("".join(lines[:limit] if limit else lines))
        local[t.name] = folder / f"{t.name}.jsonl"
    return write_task_folder(local, folder)


def evaluate_models(trained: dict[str, TrainResult], groups: dict[str, list[str]], tokenizer: str, cfg: EvalSettings,
                    tokenized: TokenizeResult, out: StageDir, rt: Runtime) -> dict[str, ModelEval]:
    """Score models by name, all in one scoring process (model.evaluate takes one job file per model)."""
    work = Path(out.local())
    jobs = {name: EvalJob(spec=t.spec, checkpoint=out.fetch(t.checkpoint), checkpoint_manifest=t.checkpoint_manifest,
                          tokenizer=tokenizer, tokenizer_sha256=tokenized.tokenizer.sha256, groups=groups,
                          max_sequences=cfg.evaluate.max_sequences, eod=tokenized.eod, hf_dir=str(work / f"hf_{name}"),
                          prompts=list(PROMPTS), max_new_tokens=MAX_NEW_TOKENS, seed=GENERATION_SEED,
                          result_path=str(work / f"eval_{name}.json"), tasks_dir=str(work / "tasks"),
                          task_names=[t.name for t in tokenized.evalsets])
            for name, t in trained.items()}
    cmd = python_cmd("model.evaluate", write(jobs[next(iter(jobs))], work / f"eval_{next(iter(jobs))}.cfg.json"))
    for name in list(jobs)[1:]:
        cmd += ["--config", write(jobs[name], work / f"eval_{name}.cfg.json")]
    run_job(cmd, lambda line: rt.log(f"[evaluate] {line}"), timeout_s=3600 * len(jobs),
            log_path=str(work / "eval.log"))
    models = {}
    for name, job in jobs.items():
        res = EvalOutput.read(job.result_path)
        scores, rate = hap_rate([g.completion for g in res.generations], cfg.hap)
        models[name] = ModelEval(
            groups=res.groups, sources=res.sources, hf_dir=out.rel(f"hf_{name}"),
            max_abs_logit_diff=res.max_abs_logit_diff, hap_rate=rate, tasks=res.tasks,
            generations=tuple(ScoredGeneration(g.prompt, g.completion, s) for g, s in zip(res.generations, scores)))
    return models


def run(cfg: EvalSettings, inputs: EvalInputs, out: StageDir, rt: Runtime) -> EvaluateResult:
    work = Path(out.local())
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = verified_tokenizer(inputs.tokenized, out)
    trained = {"base": inputs.base, "specialized": inputs.specialized}
    if inputs.baseline:
        trained["baseline"] = inputs.baseline
    groups = heldout_for(inputs.tokenized, cfg.domain, out)
    task_folder(inputs.tokenized, cfg.evaluate.max_task_items, out)
    models = evaluate_models(trained, groups, str(tokenizer), cfg, inputs.tokenized, out, rt)
    # reaching this stage means the legal gate and every contract passed: a failure stops the flow before it
    decision = gate(models["base"].groups, models["specialized"].groups, cfg.domain,
                    cfg.evaluate.min_domain_improvement, cfg.evaluate.max_general_regression, data_ok=True,
                    hap_rate=models["specialized"].hap_rate, max_hap_rate=cfg.evaluate.max_hap_rate,
                    base_tasks=models["base"].tasks, special_tasks=models["specialized"].tasks,
                    max_task_regression=cfg.evaluate.max_task_regression)
    seen = tokens_seen({k: t.tokens for k, t in trained.items()}, {"specialized": "base"})
    rows = comparison_rows({k: m.groups for k, m in models.items()}, {k: t.spec.num_params() for k, t in trained.items()},
                           seen, cfg.domain)
    (work / "comparison.md").write_text(table_markdown(rows))
    chart(rows, str(work / "comparison.png"))
    out.upload()
    return EvaluateResult(domain=cfg.domain, models=models, gate=decision, comparison=tuple(rows),
                          tokenizer=out.rel("tokenizer.json"), comparison_md=out.rel("comparison.md"),
                          comparison_png=out.rel("comparison.png"), tasks_dir=out.rel("tasks"))


def reads(cfg: EvalSettings, inputs: EvalInputs) -> list:
    from tasks.curate.rules.hap_learned import TRAIN

    return file_hashes([cfg.hap.words_path, str(TRAIN)])  # the HAP scorer of generations reads both


STAGE = StageDef(name="evaluate", run=run, result=EvaluateResult, subprocess_modules=("model.evaluate",), reads=reads)
