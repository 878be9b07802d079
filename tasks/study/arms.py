"""The study's arms and what is concluded from them. Pure functions: settings in, settings out; scores in, table,
chart and conclusion out.

Arms, each trained once per seed on the same curated and tokenized data:
- `base`: the small model's general pretraining ([pretrain]);
- `ratio_<pct>`: continued pretraining of that base ([specialize]) at a domain share of <pct> percent, the rest
  general text;
- `natural_<m>x`: the [baseline] model trained from scratch on the natural mixture of all curated training data
  (each domain at its share of the tokens), on m times the small model's training compute (6·N·D, pretrain and
  specialization together)."""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field, replace

from tasks.train.config import BaselineConfig, ModelConfig, TrainConfig, TrainSettings, baseline_model, baseline_run


def ratio_arm(ratio: float) -> str:
    return f"ratio_{round(ratio * 100):03d}"


def natural_arm(multiple: float) -> str:
    return f"natural_{multiple:g}x"


def specialize_settings(model: ModelConfig, specialize: TrainConfig, domain: str, ratio: float,
                        seed: int) -> TrainSettings:
    mix = {k: v for k, v in ((domain, ratio), ("general", 1.0 - ratio)) if v > 0}
    return TrainSettings(model=model, train=replace(specialize, mix=mix), seed=seed)


def natural_mix(datasets) -> dict[str, float]:
    """Each domain's share of the training tokens (the mixture a model trained on all the data at once sees)."""
    tokens: dict[str, int] = defaultdict(int)
    for d in datasets:
        if d.split == "train":
            tokens[d.domain] += d.num_tokens
    total = sum(tokens.values())
    if not total:
        raise ValueError("no training tokens: nothing to mix")
    return {k: v / total for k, v in sorted(tokens.items()) if v > 0}


def small_sequences(pretrain: TrainConfig, specialize: TrainConfig) -> int:
    return pretrain.steps * pretrain.global_batch_size + specialize.steps * specialize.global_batch_size


def natural_settings(model: ModelConfig, pretrain: TrainConfig, specialize: TrainConfig, baseline: BaselineConfig,
                     vocab_size: int, multiple: float, mix: dict[str, float], seed: int) -> TrainSettings:
    """The natural-mix baseline on `multiple` times the small model's compute: sequences = multiple x N_small x
    sequences_small / N_big (same sequence length), rounded up to whole steps."""
    small = model.spec(vocab_size).num_params()
    big = baseline_model(model, baseline).spec(vocab_size).num_params()
    sequences = multiple * small * small_sequences(pretrain, specialize) / big
    return baseline_run(model, pretrain, baseline, max(1, math.ceil(sequences / baseline.global_batch_size)), mix, seed)


@dataclass(frozen=True)
class ArmScore:
    """One trained model of the study, evaluated."""
    arm: str
    seed: int
    params: int
    tokens: int
    """Tokens it trained on (a specialized model: its base's and its own)."""
    domain_bpb: float
    general_bpb: float
    domain_ppl: float
    general_ppl: float
    tasks: dict[str, float] = field(default_factory=dict)

    @property
    def flops(self) -> float:
        return 6.0 * self.params * self.tokens


@dataclass(frozen=True)
class ArmSummary:
    arm: str
    seeds: int
    params: int
    flops: float
    mean: dict[str, float]
    std: dict[str, float]


METRICS = ("domain_bpb", "general_bpb", "domain_ppl", "general_ppl")


def summarize(scores: list[ArmScore]) -> list[ArmSummary]:
    """Mean and standard deviation (sample, 0 for one seed) of every metric and task accuracy per arm, in the
    order the arms first appear."""
    by_arm: dict[str, list[ArmScore]] = {}
    for s in scores:
        by_arm.setdefault(s.arm, []).append(s)
    out = []
    for arm, rows in by_arm.items():
        values = {m: [getattr(r, m) for r in rows] for m in METRICS}
        for t in sorted({t for r in rows for t in r.tasks}):
            values[f"task.{t}"] = [r.tasks[t] for r in rows if t in r.tasks]
        out.append(ArmSummary(arm=arm, seeds=len(rows), params=rows[0].params,
                              flops=statistics.fmean(r.flops for r in rows),
                              mean={k: statistics.fmean(v) for k, v in values.items()},
                              std={k: statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in values.items()}))
    return out


def conclude(summary: list[ArmSummary], max_general_regression: float) -> dict:
    """What the figures say: the best ratio within the general-regression budget, and how the small specialized
    model compares on the domain with each natural-mix baseline and at what compute."""
    arms = {s.arm: s for s in summary}
    base = arms.get("base")
    ratios = [s for s in summary if s.arm.startswith("ratio_")]
    out: dict = {"max_general_regression": max_general_regression}
    if base is None or not ratios:
        return out
    budget = base.mean["general_bpb"] * (1.0 + max_general_regression)
    within = [s for s in ratios if s.mean["general_bpb"] <= budget]
    best = min(within or ratios, key=lambda s: s.mean["domain_bpb"])
    out.update(best_ratio=best.arm, best_within_budget=bool(within), base_general_bpb=base.mean["general_bpb"],
               best_domain_bpb=best.mean["domain_bpb"], best_general_bpb=best.mean["general_bpb"],
               general_regression=best.mean["general_bpb"] / base.mean["general_bpb"] - 1.0)
    out["versus_natural"] = [{
        "arm": s.arm, "params": s.params, "compute_ratio": s.flops / best.flops,
        "domain_bpb": s.mean["domain_bpb"], "general_bpb": s.mean["general_bpb"],
        "specialized_better_on_domain": best.mean["domain_bpb"] < s.mean["domain_bpb"],
        "specialized_better_on_general": best.mean["general_bpb"] < s.mean["general_bpb"]}
        for s in summary if s.arm.startswith("natural_")]
    return out


def _pm(s: ArmSummary, key: str, digits: int = 3) -> str:
    if key not in s.mean:
        return "—"
    return f"{s.mean[key]:.{digits}f} ± {s.std[key]:.{digits}f}"


def table_markdown(summary: list[ArmSummary]) -> str:
    tasks = sorted({k for s in summary for k in s.mean if k.startswith("task.")})
    head = ["arm", "seeds", "params", "FLOPs (6ND)", "domain bpb", "general bpb", "domain ppl", "general ppl",
            *[t[5:] for t in tasks]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary:
        cells = [s.arm, str(s.seeds), f"{s.params / 1e6:.2f}M", f"{s.flops:.2e}", _pm(s, "domain_bpb"),
                 _pm(s, "general_bpb"), _pm(s, "domain_ppl", 1), _pm(s, "general_ppl", 1), *[_pm(s, t) for t in tasks]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def conclusion_text(c: dict, domain: str) -> str:
    if "best_ratio" not in c:
        return "No conclusion: the study needs the base and at least one ratio."
    pct = int(c["best_ratio"].split("_")[1])
    lines = [f"Best domain share: {pct}% {domain} ({c['best_domain_bpb']:.3f} domain bits per byte), with general "
             f"bits per byte {100 * c['general_regression']:+.1f}% against the base"
             + ("" if c["best_within_budget"] else
                f" (no ratio stayed within the {100 * c['max_general_regression']:.0f}% budget: best overall shown)")
             + "."]
    for v in c.get("versus_natural", []):
        verdict = "beats" if v["specialized_better_on_domain"] else "does not beat"
        lines.append(f"On {domain}, the small specialized model {verdict} the {v['params'] / 1e6:.1f}M-parameter "
                     f"natural-mix model trained on {v['compute_ratio']:.1f}x its compute ({c['best_domain_bpb']:.3f} "
                     f"vs {v['domain_bpb']:.3f} bits per byte); on general text it is "
                     f"{'better' if v['specialized_better_on_general'] else 'worse'} ({c['best_general_bpb']:.3f} vs "
                     f"{v['general_bpb']:.3f}).")
    return "\n".join(lines)


def frontier_chart(summary: list[ArmSummary], path: str, domain: str) -> None:
    """Domain vs general bits per byte: the ratios as a line (with the seeds' standard deviation), the base and the
    natural-mix baselines as labelled points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ratios = [s for s in summary if s.arm.startswith("ratio_")]
    if ratios:
        ax.errorbar([s.mean["general_bpb"] for s in ratios], [s.mean["domain_bpb"] for s in ratios],
                    xerr=[s.std["general_bpb"] for s in ratios], yerr=[s.std["domain_bpb"] for s in ratios],
                    marker="o", capsize=3, label="small model, continued pretraining")
        for s in ratios:
            ax.annotate(f"{int(s.arm.split('_')[1])}%", (s.mean["general_bpb"], s.mean["domain_bpb"]),
                        textcoords="offset points", xytext=(5, 4), fontsize=8)
    for s in summary:
        if s.arm == "base" or s.arm.startswith("natural_"):
            ax.errorbar([s.mean["general_bpb"]], [s.mean["domain_bpb"]], xerr=[s.std["general_bpb"]],
                        yerr=[s.std["domain_bpb"]], marker="s" if s.arm == "base" else "^", capsize=3, linestyle="none",
                        label=f"{s.arm} ({s.params / 1e6:.1f}M params, {s.flops:.1e} FLOPs)")
    ax.set_xlabel("general bits per byte (lower is better)")
    ax.set_ylabel(f"{domain} bits per byte (lower is better)")
    ax.set_title(f"Specialization frontier: share of {domain} in continued pretraining")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
