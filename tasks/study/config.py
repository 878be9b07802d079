"""[study]: what `keel study` trains and compares (tasks/study/arms.py builds each arm's settings)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StudyConfig:
    ratios: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
    """Domain shares of the continued pretraining of the small base ([specialize]); the rest is general text."""
    seeds: tuple[int, ...] = (1, 2, 3)
    """Every arm is trained once per seed (the base pretraining too)."""
    compute_multiples: tuple[float, ...] = (1.0, 4.0)
    """Natural-mix baselines: the [baseline] model trained from scratch on the natural mixture of all curated
    data, on this multiple of the small model's training compute (pretrain + specialize, 6·N·D)."""
    max_general_regression: float = 0.10
    """The best ratio is the one with the best domain score whose general bits per byte is at most this much
    (relative) worse than the base's."""

    def check(self) -> list[str]:
        p = []
        if not self.ratios or any(not 0.0 <= r <= 1.0 for r in self.ratios):
            p.append(f"[study].ratios = {list(self.ratios)}: give at least one domain share, each within [0, 1]")
        if len(set(self.ratios)) != len(self.ratios) or len(set(self.seeds)) != len(self.seeds):
            p.append("[study]: ratios and seeds must not repeat")
        if not self.seeds:
            p.append("[study].seeds is empty: give at least one seed")
        if any(m <= 0 for m in self.compute_multiples):
            p.append(f"[study].compute_multiples = {list(self.compute_multiples)} must be positive")
        if self.max_general_regression < 0:
            p.append("[study].max_general_regression must be at least 0")
        return p
