"""The promotion gate: does the specialized model earn the `champion` alias? A pure decision with its numbers."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from model.job import GroupScore, TaskScore


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
    base_tasks: dict[str, TaskScore] = field(default_factory=dict)
    special_tasks: dict[str, TaskScore] = field(default_factory=dict)
    """Downstream task accuracies (lm-eval) of both models on the same items."""


def task_regressions(ref: dict[str, TaskScore], new: dict[str, TaskScore], margin: float, who: str) -> list[str]:
    """Tasks on which `new` is worse than `ref` beyond the margin: an accuracy drop larger than `margin` (absolute)
    and than two standard errors of the difference, so that the noise of a small task set alone does not decide."""
    out = []
    for name in sorted(ref):
        if name not in new:
            continue
        drop = ref[name].acc - new[name].acc
        se2 = 2 * math.hypot(ref[name].acc_stderr, new[name].acc_stderr)
        if drop > margin and drop > se2:
            out.append(f"{name} accuracy {new[name].acc:.3f} vs {who} {ref[name].acc:.3f}: drop {drop:.3f} > allowed "
                       f"{margin} and > 2 standard errors ({se2:.3f})")
    return out


def gate(base: dict[str, GroupScore], special: dict[str, GroupScore], domain: str, min_domain_improvement: float,
         max_general_regression: float, data_ok: bool, hap_rate: float = 0.0, max_hap_rate: float = 1.0,
         base_tasks: dict[str, TaskScore] | None = None, special_tasks: dict[str, TaskScore] | None = None,
         max_task_regression: float = 0.05) -> GateDecision:
    """Promotion decision from held-out perplexities per group (the domain and 'general') of both models and their
    downstream task accuracies."""
    base_tasks, special_tasks = base_tasks or {}, special_tasks or {}
    reasons = task_regressions(base_tasks, special_tasks, max_task_regression, "base")
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
                        special_domain_ppl=d_spec, base_general_ppl=g_base, special_general_ppl=g_spec,
                        base_tasks=dict(base_tasks), special_tasks=dict(special_tasks))


@dataclass(frozen=True)
class ChampionDecision:
    """Does the new version take `champion` from the current one? (The first version: from its base, by `gate`.)"""
    promote: bool
    reasons: tuple[str, ...]
    """Why, or why not."""
    champion_version: str | None
    """The version that held `champion` when this one was registered (None: there was none)."""
    champion_domain_ppl: float | None = None
    champion_general_ppl: float | None = None
    domain_gain_vs_champion: float | None = None
    """Fraction by which the new version's domain ppl is below the champion's (negative: worse)."""
    general_change_vs_champion: float | None = None
    """Fraction by which the new version's general ppl is above the champion's (positive: worse)."""


TASK_TAG = "keel.eval.task."


def task_tags(tasks: dict[str, TaskScore]) -> dict[str, str]:
    """Registry tags of a version's downstream task scores (read back by `champion_tasks`)."""
    out = {}
    for name, t in tasks.items():
        out.update({f"{TASK_TAG}{name}.acc": f"{t.acc:.6g}", f"{TASK_TAG}{name}.acc_stderr": f"{t.acc_stderr:.6g}",
                    f"{TASK_TAG}{name}.items": str(t.items)})
    return out


def champion_tasks(tags: dict[str, str]) -> dict[str, TaskScore]:
    names = {k[len(TASK_TAG):-len(".acc")] for k in tags if k.startswith(TASK_TAG) and k.endswith(".acc")}
    out = {}
    for n in names:
        try:
            out[n] = TaskScore(float(tags[f"{TASK_TAG}{n}.acc"]), float(tags.get(f"{TASK_TAG}{n}.acc_stderr", 0)),
                               int(tags.get(f"{TASK_TAG}{n}.items", 0)))
        except ValueError:
            continue
    return out


def challenge(candidate: GateDecision, champion: dict | None, held_out: str, min_gain_over_champion: float,
              max_general_regression: float, max_task_regression: float = 0.05) -> ChampionDecision:
    """The new version against the current champion: it must pass its own gate, have been scored on the same
    held-out data (`held_out`: the tokenize stage hash, equal to the champion's, so also the same task items), be
    better on the domain by `min_gain_over_champion`, not worse on general text beyond `max_general_regression`
    and on no downstream task beyond `max_task_regression` (see `task_regressions`). `champion` is
    {"version", "tags"} of the current champion, or None."""
    if champion is not None and champion["tags"].get("keel.tainted") == "true":
        why = (f"champion version {champion['version']} is tainted (it saw data since forgotten): compared with its "
               "base instead",)
        return ChampionDecision(candidate.promote, why + (() if candidate.promote else candidate.reasons), None)
    if champion is None:
        why = ("first version of the model: compared with its base; passed its gate",) if candidate.promote else \
            candidate.reasons
        return ChampionDecision(candidate.promote, why, None)
    version, tags = champion["version"], champion["tags"]
    if not candidate.promote:
        return ChampionDecision(False, (f"champion stays version {version}: this version fails its own gate",
                                        *candidate.reasons), version)
    try:
        c_dom, c_gen = float(tags["keel.eval.special_domain_ppl"]), float(tags["keel.eval.special_general_ppl"])
    except (KeyError, ValueError):
        return ChampionDecision(False, (f"champion stays version {version}: it has no evaluation figures to compare "
                                        "with; use `keel promote` to decide",), version)
    gain = (c_dom - candidate.special_domain_ppl) / c_dom
    change = (candidate.special_general_ppl - c_gen) / c_gen
    figures = dict(champion_domain_ppl=c_dom, champion_general_ppl=c_gen, domain_gain_vs_champion=gain,
                   general_change_vs_champion=change)
    if tags.get("keel.stage_hash.tokenize") != held_out:
        return ChampionDecision(False, (f"champion stays version {version}: it was scored on other held-out data "
                                        "(another tokenize stage), so the figures do not compare; use `keel promote` "
                                        "to decide",), version, **figures)
    reasons = []
    if gain < min_gain_over_champion:
        reasons.append(f"domain ppl {candidate.special_domain_ppl:.2f} vs champion version {version} {c_dom:.2f}: "
                       f"gain {gain:.3f} < required {min_gain_over_champion}")
    if change > max_general_regression:
        reasons.append(f"general ppl {candidate.special_general_ppl:.2f} vs champion version {version} {c_gen:.2f}: "
                       f"regression {change:.3f} > allowed {max_general_regression}")
    reasons += task_regressions(champion_tasks(tags), candidate.special_tasks, max_task_regression,
                                f"champion version {version}")
    if reasons:
        return ChampionDecision(False, (f"champion stays version {version}", *reasons), version, **figures)
    return ChampionDecision(True, (f"beats champion version {version}: domain ppl {c_dom:.2f} -> "
                                   f"{candidate.special_domain_ppl:.2f}, general ppl {c_gen:.2f} -> "
                                   f"{candidate.special_general_ppl:.2f}",), version, **figures)
