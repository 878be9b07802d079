"""Stage `study_eval`: one trained model of the study scored as the evaluate stage scores models (held-out
perplexity and bits per byte per domain, the downstream tasks, HAP of generations), with what the study's table
needs beside (parameters, tokens seen). One stage per model, so an interrupted study resumes where it stopped."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tasks.core.cachekey import file_hashes
from tasks.core.stage import Runtime, StageDef
from tasks.core.storage import StageDir
from tasks.evaluate.stage import EvalSettings, ModelEval, evaluate_models, heldout_for, task_folder, verified_tokenizer
from tasks.study.arms import ArmScore
from tasks.tokenize.stage import TokenizeResult
from tasks.train.stage import TrainResult


@dataclass(frozen=True)
class ArmInputs:
    tokenized: TokenizeResult
    trained: TrainResult
    tokens_before: int = 0
    """Tokens the model's initialisation trained on (a specialized model: its base's)."""


@dataclass(frozen=True)
class ArmEval:
    evaluation: ModelEval
    params: int
    tokens: int

    def score(self, arm: str, seed: int, domain: str) -> ArmScore:
        g = self.evaluation.groups
        return ArmScore(arm=arm, seed=seed, params=self.params, tokens=self.tokens,
                        domain_bpb=g[domain].bpb, general_bpb=g["general"].bpb, domain_ppl=g[domain].ppl,
                        general_ppl=g["general"].ppl, tasks={k: t.acc for k, t in self.evaluation.tasks.items()})


def run(cfg: EvalSettings, inputs: ArmInputs, out: StageDir, rt: Runtime) -> ArmEval:
    Path(out.local()).mkdir(parents=True, exist_ok=True)
    tokenizer = verified_tokenizer(inputs.tokenized, out)
    groups = heldout_for(inputs.tokenized, cfg.domain, out)
    task_folder(inputs.tokenized, cfg.evaluate.max_task_items, out)
    evaluation = evaluate_models({"model": inputs.trained}, groups, str(tokenizer), cfg, inputs.tokenized, out,
                                 rt)["model"]
    out.upload()
    return ArmEval(evaluation=evaluation, params=inputs.trained.num_params,
                   tokens=inputs.tokens_before + inputs.trained.tokens)


def reads(cfg: EvalSettings, inputs: ArmInputs) -> list:
    return file_hashes([cfg.hap.words_path])


STAGE = StageDef(name="study_eval", run=run, result=ArmEval, subprocess_modules=("model.evaluate",), reads=reads)
