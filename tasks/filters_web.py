"""Web-text rules of the published recipes: C4 line rules and FineWeb quality (definitions from datatrove's
C4QualityFilter and FineWebQualityFilter, thresholds as published)."""
from __future__ import annotations

import re

import pandas as pd

from tasks.curation import StepResult, _result

TERMINAL = (".", "?", "!", '"', "'")
_CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_SENT_END = re.compile(r"[.!?]+(?=\s|$)")


STOP_CHARS = (".", "!", "?", "。", "！", "？", "．", "؟", "।", "॥", "‼", "⁇", "⁈", "⁉")  # terminal punctuation


def c4_quality(df: pd.DataFrame, cfg) -> StepResult:
    """C4 (datatrove C4QualityFilter order): per line drop too-long words, strip citations, require terminal
    punctuation and >= 3 words, drop javascript/policy lines; lorem ipsum or '{' in a kept line rejects the
    document; fewer than `c4_min_sentences` sentences rejects it. The text becomes the kept lines."""
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
            sentences += max(1, len(_SENT_END.findall(line)))
            kept.append(line)
        if reason is None and sentences < cfg.c4_min_sentences:
            reason = "too_few_sentences"
        texts.append("\n".join(kept).strip() if reason is None else text)
        reasons.append(reason)
    return _result(df.assign(text=texts), reasons)


def fineweb_quality(df: pd.DataFrame, cfg) -> StepResult:
    """FineWeb (datatrove FineWebQualityFilter): line-end punctuation ratio, short-line ratio, duplicated-line
    characters, newlines per word."""
    from tasks.curation import _duplicates, split_words

    reasons = []
    for text in df["text"]:
        lines = [ln for ln in text.split("\n") if ln.strip() != ""]
        if not lines:
            reasons.append("empty")
            continue
        n = len(lines)
        if sum(ln.endswith(STOP_CHARS) for ln in lines) / n < cfg.fineweb_line_punct_thr:
            reasons.append("line_punct_ratio")
        elif sum(len(ln) <= 30 for ln in lines) / n > cfg.fineweb_short_line_thr:
            reasons.append("short_line_ratio")
        elif _duplicates(lines)[1] / max(len(text.replace("\n", "")), 1) > cfg.fineweb_char_dup_ratio:
            reasons.append("char_dup_ratio")
        elif text.count("\n") / max(len(split_words(text)), 1) > cfg.fineweb_new_line_ratio:
            reasons.append("list_ratio")
        else:
            reasons.append(None)
    return _result(df, reasons)
