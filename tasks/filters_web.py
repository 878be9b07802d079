"""Web-text rules of the published recipes: C4 line rules and FineWeb quality (definitions from datatrove's
C4QualityFilter and FineWebQualityFilter, thresholds as published)."""
from __future__ import annotations

import re

import pandas as pd

from tasks.curation import StepResult, _result

TERMINAL = (".", "?", "!", '"', "'")
_CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_SENT_END = re.compile(r"[.!?]+")


def c4_quality(df: pd.DataFrame, cfg) -> StepResult:
    """C4: keep lines ending in terminal punctuation with >= 3 words; reject lorem ipsum, '{', < 5 sentences."""
    texts, reasons = [], []
    for text in df["text"]:
        low = text.lower()
        if "lorem ipsum" in low:
            texts.append(text)
            reasons.append("lorem_ipsum")
            continue
        if "{" in text:
            texts.append(text)
            reasons.append("curly_bracket")
            continue
        kept = []
        for line in text.split("\n"):
            line = _CITATION.sub("", line.strip())
            if not line.endswith(TERMINAL) or line.endswith("..."):
                continue
            words = line.split()
            if len(words) < 3 or any(len(w) > 1000 for w in words):
                continue
            ll = line.lower()
            if "javascript" in ll or any(p in ll for p in _POLICY):
                continue
            kept.append(line)
        new = "\n".join(kept)
        texts.append(new)
        reasons.append(None if len(_SENT_END.findall(new)) >= cfg.c4_min_sentences else "c4_too_few_sentences")
    return _result(df.assign(text=texts), reasons)


def fineweb_quality(df: pd.DataFrame, cfg) -> StepResult:
    """FineWeb: line-end punctuation ratio, short-line ratio, duplicated-line chars, newline-per-word ratio."""
    reasons = []
    for text in df["text"]:
        lines = [ln for ln in text.split("\n") if ln.strip()]
        if not lines:
            reasons.append("empty")
            continue
        n = len(lines)
        if sum(ln.rstrip().endswith(TERMINAL) for ln in lines) / n <= cfg.fineweb_line_punct_thr:
            reasons.append("line_punct_ratio")
        elif sum(len(ln) <= 30 for ln in lines) / n >= cfg.fineweb_short_line_thr:
            reasons.append("short_line_ratio")
        else:
            seen, dup_chars = set(), 0
            for ln in lines:
                if ln in seen:
                    dup_chars += len(ln)
                seen.add(ln)
            non_empty = len(text.replace("\n", ""))
            if dup_chars / max(non_empty, 1) > cfg.fineweb_char_dup_ratio:
                reasons.append("char_dup_ratio")
            elif text.count("\n") / max(len(text.split()), 1) > cfg.fineweb_new_line_ratio:
                reasons.append("list_ratio")
            else:
                reasons.append(None)
    return _result(df, reasons)
