"""Evaluation stage: held-out perplexity / bits-per-byte per domain for each model, and the promotion gate."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

from model.presets import ModelSpec
from tasks.launch import python_cmd, run_job

PROMPTS = ["The attacker", "To be, or not to be", "A buffer overflow occurs when", "The adversary may",
           "Improper input validation", "My lord,", "Mitigation:", "The product does not"]


def heldout_groups(datasets: list[dict], split: str = "test") -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for d in datasets:
        if d["split"] == split and d["num_tokens"] > 0:
            groups.setdefault(d["domain"], []).append(d["prefix"])
    return groups


def evaluate_checkpoint(name: str, work_dir: str, spec: ModelSpec, checkpoint: str, manifest: dict,
                        tokenizer_path: str, max_sequences: int, log: Callable[[str], None]) -> dict:
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    cfg = {"spec": dataclasses.asdict(spec), "checkpoint": checkpoint, "tokenizer": tokenizer_path,
           "groups": heldout_groups(manifest["datasets"]), "max_sequences": max_sequences, "eod": manifest["eod"],
           "hf_dir": str(work / f"hf_{name}"), "prompts": PROMPTS, "result_path": str(work / f"eval_{name}.json")}
    path = work / f"eval_{name}.cfg.json"
    path.write_text(json.dumps(cfg, indent=1))
    run_job(python_cmd("model.evaluate", str(path)), log, timeout_s=3600, log_path=str(work / f"eval_{name}.log"))
    return json.loads((work / f"eval_{name}.json").read_text())


def hap_rate(results: dict, threshold: float) -> float:
    """Fraction of a model's sample generations whose HAP score reaches the threshold."""
    from tasks.hap import hap_scores

    texts = [g["completion"] for g in results.get("generations", [])]
    return float((hap_scores(texts) >= threshold).mean()) if texts else 0.0


def gate(base: dict, special: dict, domain: str, min_domain_improvement: float,
         max_general_regression: float, data_ok: bool, hap_rate: float = 0.0, max_hap_rate: float = 1.0) -> dict:
    """Promotion decision with its numbers. Perplexities come from the 'groups' of each eval result."""
    b, s = base["groups"], special["groups"]
    reasons = []
    d_base, d_spec = b[domain]["ppl"], s[domain]["ppl"]
    g_base, g_spec = b["general"]["ppl"], s["general"]["ppl"]
    domain_gain = (d_base - d_spec) / d_base
    general_regression = (g_spec - g_base) / g_base
    if domain_gain < min_domain_improvement:
        reasons.append(f"domain ppl gain {domain_gain:.3f} < required {min_domain_improvement}")
    if general_regression > max_general_regression:
        reasons.append(f"general ppl regression {general_regression:.3f} > allowed {max_general_regression}")
    if hap_rate > max_hap_rate:
        reasons.append(f"HAP rate {hap_rate:.3f} of generations > ceiling {max_hap_rate}")
    if not data_ok:
        reasons.append("data did not pass every contract and the legal gate")
    return {"promote": not reasons, "reasons": reasons, "domain_ppl_gain": domain_gain,
            "general_ppl_regression": general_regression, "hap_rate": hap_rate, "base_domain_ppl": d_base, "special_domain_ppl": d_spec,
            "base_general_ppl": g_base, "special_general_ppl": g_spec}
