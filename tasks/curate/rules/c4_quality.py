"""Rule `c4_quality`: C4's line rules as datatrove's C4QualityFilter defines them (thresholds as published)."""
from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from tasks.curate.step import StepResult, result
from tasks.curate.text import sentence_count, split_words

TERMINAL = (".", "?", "!", '"', "'")
_CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


@dataclass(frozen=True)
class C4QualityConfig:
    min_sentences: int = 5
    """Documents with fewer sentences after line filtering are rejected."""


def c4_quality(df: pd.DataFrame, cfg: C4QualityConfig) -> StepResult:
    """C4 (datatrove C4QualityFilter order): per line drop too-long words, strip citations, require terminal
    punctuation and >= 3 words, drop javascript/policy lines; lorem ipsum or '{' in a kept line rejects the
    document; fewer than `min_sentences` sentences rejects it. The text becomes the kept lines."""
    texts, reasons = [], []
    for text in df["text"]:
        kept, sentences, reason = [], 0, None
        for line in text.splitlines():
            line = line.strip()
            words = line.split()
            if any(len(w) > 1000 for w in words):
                continue
            line = _CITATION.sub("", line)
            if not line.endswith(TERMINAL) or line.endswith("..."):
                continue
            if len(words) < 3:
                continue
            low = line.lower()
            if "lorem ipsum" in low:
                reason = "lorem_ipsum"
                break
            if "javascript" in low:
                continue
            if "{" in line:
                reason = "curly_bracket"
                break
            if any(p in low for p in _POLICY):
                continue
            sentences += sentence_count(split_words(line))
            kept.append(line)
        if reason is None and sentences < cfg.min_sentences:
            reason = "too_few_sentences"
        texts.append("\n".join(kept).strip() if reason is None else text)
        reasons.append(reason)
    return result(df.assign(text=texts), reasons)
