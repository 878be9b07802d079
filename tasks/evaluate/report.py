"""Evaluation reports: tokens each model saw, the comparison table (ppl per domain, params, tokens, FLOPs) and
its chart."""
from __future__ import annotations

from dataclasses import dataclass

from model.job import GroupScore


@dataclass(frozen=True)
class ComparisonRow:
    model: str
    params: int
    training_tokens: int
    flops: float
    domain: str
    domain_ppl: float | None
    general_ppl: float | None
    domain_bpb: float | None
    general_bpb: float | None


def tokens_seen(own_tokens: dict[str, int], continued_from: dict[str, str]) -> dict[str, int]:
    """Tokens each model saw in all its training: its own run plus those of the model it continued from
    (the specialized model saw pretrain + specialize tokens)."""
    def total(name: str) -> int:
        parent = continued_from.get(name)
        return own_tokens[name] + (total(parent) if parent else 0)

    return {name: total(name) for name in own_tokens}


def comparison_rows(groups: dict[str, dict[str, GroupScore]], params: dict[str, int], tokens: dict[str, int],
                    domain: str) -> list[ComparisonRow]:
    rows = []
    for name, g in groups.items():
        n = params[name]
        dom, gen = g.get(domain), g.get("general")
        rows.append(ComparisonRow(model=name, params=n, training_tokens=tokens[name], flops=6.0 * n * tokens[name],
                                  domain=domain, domain_ppl=dom.ppl if dom else None, general_ppl=gen.ppl if gen else None,
                                  domain_bpb=dom.bpb if dom else None, general_bpb=gen.bpb if gen else None))
    return rows


def table_markdown(rows: list[ComparisonRow]) -> str:
    f = lambda v, fmt: format(v, fmt) if v is not None else "n/a"  # noqa: E731
    lines = ["| model | params | training tokens | FLOPs (6ND) | domain ppl | general ppl | domain bpb | general bpb |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.model} | {r.params:,} | {r.training_tokens:,} | {r.flops:.3e} | "
                     f"{f(r.domain_ppl, '.2f')} | {f(r.general_ppl, '.2f')} | {f(r.domain_bpb, '.3f')} | "
                     f"{f(r.general_bpb, '.3f')} |")
    return "\n".join(lines) + "\n"


def chart(rows: list[ComparisonRow], path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = [r.model for r in rows]
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r.domain_ppl or 0 for r in rows], width=0.4, label=f"{rows[0].domain} ppl")
    ax.bar([i + 0.2 for i in x], [r.general_ppl or 0 for r in rows], width=0.4, label="general ppl")
    ax.set_xticks(list(x), [f"{n}\n{r.params / 1e6:.1f}M params" for n, r in zip(names, rows)])
    ax.set_ylabel("held-out perplexity (lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
