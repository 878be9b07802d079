"""The data mix of a training run: normalised domain weights, the per-dataset blend weights megatron samples with,
and the realized mix measured from the blended dataset the job built. The one implementation of "domain share"
that planning, training and evaluation use."""
from __future__ import annotations

from dataclasses import dataclass

from model.job import TrainOutput
from tasks.tokenize.stage import Dataset


def normalize_mix(mix: dict[str, float]) -> dict[str, float]:
    """Domain -> share of training samples (weights scaled to sum 1; zero-weight domains dropped)."""
    total = sum(mix.values())
    if total <= 0 or any(w < 0 for w in mix.values()):
        raise ValueError(f"mix {mix} needs non-negative weights with a positive sum")
    return {d: w / total for d, w in sorted(mix.items()) if w > 0}


def specialization_domain(mix: dict[str, float]) -> str:
    """The one domain besides 'general' a specialization mix names (ValueError otherwise)."""
    domains = [d for d, w in mix.items() if d != "general" and w > 0]
    if len(domains) != 1:
        raise ValueError("[specialize].mix must name exactly one domain besides 'general' with a positive weight, "
                         f"e.g. {{cybersecurity = 0.5, general = 0.5}}; it names {domains or 'none'}")
    return domains[0]


@dataclass(frozen=True)
class Share:
    """One dataset's part of a training run."""

    dataset: Dataset
    weight: float
    """Share of training samples drawn from it (domain share x its share of the domain's tokens)."""


def shares(datasets: tuple[Dataset, ...], mix: dict[str, float], split: str = "train") -> list[Share]:
    """Per-dataset sampling weights (sum 1): each domain's share split over its datasets by token count."""
    out = []
    for domain, w in normalize_mix(mix).items():
        ds = [d for d in datasets if d.domain == domain and d.split == split and d.num_tokens > 0]
        if not ds:
            known = sorted({d.domain for d in datasets if d.split == split and d.num_tokens > 0})
            raise ValueError(f"mix names domain {domain!r} but no {split} data has it; domains present: {known}")
        tokens = sum(d.num_tokens for d in ds)
        out.extend(Share(d, w * d.num_tokens / tokens) for d in ds)
    return out


@dataclass(frozen=True)
class SourceMix:
    samples: int
    tokens: int
    share: float
    epochs: float


@dataclass(frozen=True)
class RealizedMix:
    samples: int
    tokens: int
    domain_share: dict[str, float]
    sources: dict[str, SourceMix]


def realized(out: TrainOutput, plan: list[Share], local_prefix: dict[str, str]) -> RealizedMix:
    """Realized samples/tokens per domain and source, shares, and epochs per source. `local_prefix` maps a
    dataset's output-root-relative prefix to the path the job read it from."""
    per_prefix = out.samples_per_prefix
    tps = out.tokens_per_sample
    total = sum(per_prefix.values()) or 1
    by_domain: dict[str, int] = {}
    sources = {}
    for s in plan:
        d = s.dataset
        n = per_prefix.get(local_prefix[d.prefix], 0)
        by_domain[d.domain] = by_domain.get(d.domain, 0) + n
        sources[d.source_id] = SourceMix(samples=n, tokens=n * tps, share=n / total, epochs=n * tps / max(d.num_tokens, 1))
    return RealizedMix(samples=total, tokens=total * tps,
                       domain_share={k: v / total for k, v in sorted(by_domain.items())}, sources=sources)
