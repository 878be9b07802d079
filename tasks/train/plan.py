"""Plan stage: the token budget. Parameters, tokens and words per parameter, epochs per source under each
training stage's mix, compute (6*N*D).

Rules of thumb (IBM Research; Chinchilla): about 10 words of training data per parameter minimises training
compute (Chinchilla: ~20 tokens per parameter); 100+ words per parameter gives a data-dense model that is
cheaper at inference. Fewer than the minimum means the model is too large for its data.
"""
from __future__ import annotations

from dataclasses import dataclass

from tasks.core.stage import Runtime, StageDef
from tasks.core.storage import StageDir, write_text
from tasks.tokenize.stage import TokenizeResult
from tasks.train.config import ModelConfig, TrainConfig
from tasks.train.mix import shares


@dataclass(frozen=True)
class PlanConfig:
    min_words_per_param: float = 10.0
    """Warn (strict: refuse) below this many unique training words per parameter."""
    max_epochs: float = 4.0
    """Warn (strict: refuse) when a source would be repeated more epochs than this."""
    strict: bool = False
    """Refuse to train when the plan has warnings."""


@dataclass(frozen=True)
class PlanSettings:
    plan: PlanConfig
    model: ModelConfig
    stages: dict[str, TrainConfig]
    """Training stage name -> its schedule and mix."""


@dataclass(frozen=True)
class PlanRow:
    stage: str
    source_id: str
    domain: str
    share: float
    tokens_seen: int
    unique_tokens: int
    epochs: float


@dataclass(frozen=True)
class PlanResult:
    params: int
    unique_train_tokens: int
    unique_train_words: int
    tokens_per_param: float
    words_per_param: float
    training_tokens: int
    flops: float
    flops_with_attention: float
    sources: tuple[PlanRow, ...]
    warnings: tuple[str, ...]
    report_md: str
    """Output-root-relative path of plan.md."""


class PlanRefused(ValueError):
    """[plan].strict is on and the plan has warnings."""


def plan(cfg: PlanSettings, tokenized: TokenizeResult) -> tuple[dict, list[PlanRow], list[str]]:
    spec = cfg.model.spec(tokenized.vocab_size)
    n = spec.num_params()
    train = [d for d in tokenized.datasets if d.split == "train"]
    unique_tokens = sum(d.num_tokens for d in train)
    unique_words = sum(d.num_words for d in train)
    rows, warnings, total_tokens = [], [], 0
    for name, t in cfg.stages.items():
        tokens = t.steps * t.global_batch_size * (spec.seq_length + 1)
        total_tokens += tokens
        for s in shares(tokenized.datasets, t.mix):
            d = s.dataset
            epochs = tokens * s.weight / max(d.num_tokens, 1)
            rows.append(PlanRow(stage=name, source_id=d.source_id, domain=d.domain, share=s.weight,
                                tokens_seen=int(tokens * s.weight), unique_tokens=d.num_tokens, epochs=epochs))
            if epochs > cfg.plan.max_epochs:
                warnings.append(f"{name}: source {d.source_id} would be repeated {epochs:.1f} epochs "
                                f"(> {cfg.plan.max_epochs}); add data or lower its weight or the steps")
    words_per_param = unique_words / n if n else 0.0
    if words_per_param < cfg.plan.min_words_per_param:
        warnings.append(f"model too large for the data: {words_per_param:.2f} words per parameter "
                        f"(< {cfg.plan.min_words_per_param}); ~10 minimises training compute, 100+ gives a data-dense model")
    figures = {"params": n, "unique_train_tokens": unique_tokens, "unique_train_words": unique_words,
               "tokens_per_param": unique_tokens / n if n else 0.0, "words_per_param": words_per_param,
               "training_tokens": total_tokens, "flops": 6.0 * n * total_tokens,
               "flops_with_attention": spec.flops_per_token() * total_tokens}
    return figures, rows, warnings


def run(cfg: PlanSettings, inputs: TokenizeResult, out: StageDir, rt: Runtime) -> PlanResult:
    figures, rows, warnings = plan(cfg, inputs)
    for w in warnings:
        rt.log(f"plan: {w}")
    result = PlanResult(**figures, sources=tuple(rows), warnings=tuple(warnings), report_md=out.rel("plan.md"))
    write_text(out.path("plan.md"), plan_markdown(result))
    if cfg.plan.strict and warnings:
        raise PlanRefused("token-budget plan refused ([plan].strict = true):\n  - " + "\n  - ".join(warnings))
    return result


def plan_markdown(p: PlanResult) -> str:
    lines = ["# Token budget", "",
             f"- parameters: {p.params:,}", f"- unique train tokens: {p.unique_train_tokens:,} "
             f"({p.tokens_per_param:.2f} per parameter)",
             f"- unique train words: {p.unique_train_words:,} ({p.words_per_param:.2f} per parameter)",
             f"- training tokens: {p.training_tokens:,}; compute 6·N·D = {p.flops:.3e} FLOPs", "",
             "| stage | source | domain | share | tokens seen | unique tokens | epochs |", "|---|---|---|---|---|---|---|"]
    for r in p.sources:
        lines.append(f"| {r.stage} | {r.source_id} | {r.domain} | {r.share:.3f} | {r.tokens_seen:,} | "
                     f"{r.unique_tokens:,} | {r.epochs:.2f} |")
    if p.warnings:
        lines += ["", "**Warnings**", ""] + [f"- {w}" for w in p.warnings]
    return "\n".join(lines) + "\n"


STAGE = StageDef(name="plan", run=run, result=PlanResult)
