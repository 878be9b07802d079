"""Recipe section [evaluate]: how much held-out text is scored and what the promotion gate requires."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvaluateConfig:
    max_sequences: int = 64
    """Held-out windows scored per group (a domain, or general), shared evenly between its sources and drawn,
    seeded, from anywhere in each source's held-out split; per-source figures are reported too."""
    min_domain_improvement: float = 0.0
    """Gate: specialized domain ppl must be at least this fraction below the base model's."""
    max_general_regression: float = 0.1
    """Gate: specialized general ppl may be at most this fraction above the base model's (and above the current
    champion's)."""
    min_gain_over_champion: float = 0.01
    """Champion-challenger: a new version takes `champion` only if its domain ppl is at least this fraction below
    the current champion's on the same held-out data."""
    max_task_regression: float = 0.05
    """Gate and champion-challenger: a downstream task's accuracy may drop at most this much (absolute) against the
    base or the champion; a larger drop counts only if it also exceeds two standard errors."""
    max_task_items: int = 0
    """Score at most this many items per downstream task (0: all that the tokenize stage built)."""
    max_hap_rate: float = 0.1
    """Gate: at most this fraction of sample generations may reach the HAP threshold."""

    def check(self) -> list[str]:
        p = []
        if self.max_sequences < 1:
            p.append("[evaluate].max_sequences must be at least 1")
        if not 0 <= self.max_hap_rate <= 1:
            p.append("[evaluate].max_hap_rate must be in [0, 1]")
        if self.min_gain_over_champion < 0:
            p.append("[evaluate].min_gain_over_champion must be >= 0 (a fraction, e.g. 0.01 for 1%)")
        if not 0 <= self.max_task_regression <= 1:
            p.append("[evaluate].max_task_regression must be in [0, 1] (absolute accuracy)")
        if self.max_task_items < 0:
            p.append("[evaluate].max_task_items must be >= 0")
        if self.max_general_regression < 0:
            p.append("[evaluate].max_general_regression must be >= 0 (a fraction, e.g. 0.1 for 10%)")
        return p
