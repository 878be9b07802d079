"""Rule `fineweb_quality`: FineWeb's quality filter as datatrove's FineWebQualityFilter defines it: line-end
punctuation ratio, short-line ratio, duplicated-line characters, newlines per word (thresholds as published)."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tasks.curate.step import StepResult, result
from tasks.curate.text import doc_words, duplicates

STOP_CHARS = (".", "!", "?", "。", "！", "？", "．", "؟", "।", "॥", "‼", "⁇", "⁈", "⁉")  # terminal punctuation


@dataclass(frozen=True)
class FineWebQualityConfig:
    line_punct_thr: float = 0.12
    """Reject when the fraction of lines ending in punctuation is at most this."""
    short_line_thr: float = 0.67
    """Reject when the fraction of lines of <= 30 characters is at least this."""
    char_dup_ratio: float = 0.01
    """Reject when duplicated-line characters exceed this fraction."""
    new_line_ratio: float = 0.3
    """Reject when newlines per word exceed this (list-like documents)."""


def fineweb_quality(df: pd.DataFrame, cfg: FineWebQualityConfig) -> StepResult:
    reasons = []
    for text in df["text"]:
        lines = [ln for ln in text.split("\n") if ln.strip() != ""]
        if not lines:
            reasons.append("empty")
            continue
        n = len(lines)
        if sum(ln.endswith(STOP_CHARS) for ln in lines) / n < cfg.line_punct_thr:
            reasons.append("line_punct_ratio")
        elif sum(len(ln) <= 30 for ln in lines) / n > cfg.short_line_thr:
            reasons.append("short_line_ratio")
        elif duplicates(lines)[1] / max(len(text.replace("\n", "")), 1) > cfg.char_dup_ratio:
            reasons.append("char_dup_ratio")
        elif text.count("\n") / max(len(doc_words(text)), 1) > cfg.new_line_ratio:
            reasons.append("list_ratio")
        else:
            reasons.append(None)
    return result(df, reasons)
