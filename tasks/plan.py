"""Token-budget planner: parameters, tokens and words per parameter, epochs per source, compute (6*N*D).

Rules of thumb (IBM Research; Chinchilla): about 10 words of training data per parameter minimises training
compute (Chinchilla: ~20 tokens per parameter); 100+ words per parameter gives a data-dense model that is
cheaper at inference. Fewer than the minimum means the model is too large for its data.
"""
from __future__ import annotations


def plan(spec, datasets: list[dict], stages: dict[str, dict], min_words_per_param: float = 10.0,
         max_epochs: float = 4.0) -> dict:
    """`stages` maps stage name -> TrainConfig dict (steps, global_batch_size, mix)."""
    n = spec.num_params()
    train = [d for d in datasets if d["split"] == "train"]
    unique_tokens = sum(d["num_tokens"] for d in train)
    unique_words = sum(d.get("num_words", 0) for d in train)
    rows, warnings, total_tokens = [], [], 0
    for name, t in stages.items():
        tokens = t["steps"] * t["global_batch_size"] * (spec.seq_length + 1)
        total_tokens += tokens
        weight_sum = sum(t["mix"].values())
        for domain, w in sorted(t["mix"].items()):
            ds = [d for d in train if d["domain"] == domain]
            dom_tokens = sum(d["num_tokens"] for d in ds) or 1
            for d in ds:
                share = w / weight_sum * d["num_tokens"] / dom_tokens
                epochs = tokens * share / max(d["num_tokens"], 1)
                rows.append({"stage": name, "source_id": d["source_id"], "domain": domain, "share": share,
                             "tokens_seen": int(tokens * share), "unique_tokens": d["num_tokens"], "epochs": epochs})
                if epochs > max_epochs:
                    warnings.append(f"{name}: source {d['source_id']} would be repeated {epochs:.1f} epochs "
                                    f"(> {max_epochs}); add data or lower its weight or the steps")
    words_per_param = unique_words / n if n else 0.0
    if words_per_param < min_words_per_param:
        warnings.append(f"model too large for the data: {words_per_param:.2f} words per parameter "
                        f"(< {min_words_per_param}); ~10 minimises training compute, 100+ gives a data-dense model")
    return {"params": n, "unique_train_tokens": unique_tokens, "unique_train_words": unique_words,
            "tokens_per_param": unique_tokens / n if n else 0.0, "words_per_param": words_per_param,
            "training_tokens": total_tokens, "flops": 6.0 * n * total_tokens,
            "flops_with_attention": spec.flops_per_token() * total_tokens, "sources": rows, "warnings": warnings}


def plan_markdown(p: dict) -> str:
    lines = ["# Token budget", "",
             f"- parameters: {p['params']:,}", f"- unique train tokens: {p['unique_train_tokens']:,} "
             f"({p['tokens_per_param']:.2f} per parameter)",
             f"- unique train words: {p['unique_train_words']:,} ({p['words_per_param']:.2f} per parameter)",
             f"- training tokens: {p['training_tokens']:,}; compute 6·N·D = {p['flops']:.3e} FLOPs", "",
             "| stage | source | domain | share | tokens seen | unique tokens | epochs |", "|---|---|---|---|---|---|---|"]
    for r in p["sources"]:
        lines.append(f"| {r['stage']} | {r['source_id']} | {r['domain']} | {r['share']:.3f} | {r['tokens_seen']:,} | "
                     f"{r['unique_tokens']:,} | {r['epochs']:.2f} |")
    if p["warnings"]:
        lines += ["", "**Warnings**", ""] + [f"- {w}" for w in p["warnings"]]
    return "\n".join(lines) + "\n"
