"""The promotion gate: does the specialized model earn the `champion` alias? A pure decision with its numbers."""
from __future__ import annotations

from dataclasses import dataclass

from model.job import GroupScore


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: tuple[str, ...]
    """Why not (empty when promoted)."""
    domain_ppl_gain: float
    general_ppl_regression: float
    hap_rate: float
    base_domain_ppl: float
    special_domain_ppl: float
    base_general_ppl: float
    special_general_ppl: float


def gate(base: dict[str, GroupScore], special: dict[str, GroupScore], domain: str, min_domain_improvement: float,
         max_general_regression: float, data_ok: bool, hap_rate: float = 0.0, max_hap_rate: float = 1.0) -> GateDecision:
    """Promotion decision from held-out perplexities per group (the domain and 'general') of both models."""
    reasons = []
    d_base, d_spec = base[domain].ppl, special[domain].ppl
    g_base, g_spec = base["general"].ppl, special["general"].ppl
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
    return GateDecision(promote=not reasons, reasons=tuple(reasons), domain_ppl_gain=domain_gain,
                        general_ppl_regression=general_regression, hap_rate=hap_rate, base_domain_ppl=d_base,
                        special_domain_ppl=d_spec, base_general_ppl=g_base, special_general_ppl=g_spec)
