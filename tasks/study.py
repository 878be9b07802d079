"""Evaluation reports: the comparison table (ppl per domain, params, tokens, FLOPs) and its chart."""
from __future__ import annotations


def comparison_rows(results: dict, specs: dict, tokens: dict, domain: str) -> list[dict]:
    rows = []
    for name, res in results.items():
        n = specs[name].num_params()
        g = res["groups"]
        rows.append({"model": name, "params": n, "training_tokens": tokens[name],
                     "flops": 6.0 * n * tokens[name], "domain": domain,
                     "domain_ppl": g.get(domain, {}).get("ppl"), "general_ppl": g.get("general", {}).get("ppl"),
                     "domain_bpb": g.get(domain, {}).get("bpb"), "general_bpb": g.get("general", {}).get("bpb")})
    return rows


def table_markdown(rows: list[dict]) -> str:
    lines = ["| model | params | training tokens | FLOPs (6ND) | domain ppl | general ppl | domain bpb | general bpb |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['params']:,} | {r['training_tokens']:,} | {r['flops']:.3e} | "
                     f"{r['domain_ppl']:.2f} | {r['general_ppl']:.2f} | {r['domain_bpb']:.3f} | {r['general_bpb']:.3f} |")
    return "\n".join(lines) + "\n"


def chart(rows: list[dict], path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = [r["model"] for r in rows]
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["domain_ppl"] for r in rows], width=0.4, label=f"{rows[0]['domain']} ppl")
    ax.bar([i + 0.2 for i in x], [r["general_ppl"] for r in rows], width=0.4, label="general ppl")
    ax.set_xticks(list(x), [f"{n}\n{r['params'] / 1e6:.1f}M params" for n, r in zip(names, rows)])
    ax.set_ylabel("held-out perplexity (lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def funnel_chart(funnel: list[dict], path: str) -> str:
    """Documents kept after each curation step, with the rejected share annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    steps = [s["step"] for s in funnel]
    kept = [s["kept"] for s in funnel]
    ax.bar(steps, [s["in"] for s in funnel], color="#ddd", label="in")
    ax.bar(steps, kept, color="#3b7dd8", label="kept")
    for i, s in enumerate(funnel):
        rej = s["in"] - s["kept"]
        if rej:
            ax.annotate(f"-{rej}", (i, s["in"]), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("documents")
    ax.set_title("curation funnel")
    ax.tick_params(axis="x", rotation=30)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
