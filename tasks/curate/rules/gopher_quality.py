"""Rule `gopher_quality`: the Gopher quality rules (Rae et al. 2021) as datatrove's GopherQualityFilter defines them,
with its published thresholds: word count, mean word length, symbol ratios, bullets and ellipses, alphabetic
words, stop words."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.curate.step import StepResult, result
from tasks.curate.text import PUNCTUATION, doc_words

STOP_WORDS = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])  # Gopher


@dataclass(frozen=True)
class GopherQualityConfig:
    min_words: int = 50
    """Documents with fewer words are rejected (lower it for short structured records)."""
    max_words: int = 100_000
    """Documents with more words are rejected."""
    min_avg_word_length: float = 3.0
    """Mean word length lower bound."""
    max_avg_word_length: float = 10.0
    """Mean word length upper bound."""
    max_symbol_word_ratio: float = 0.1
    """'#' and '...' per word."""
    min_alpha_word_fraction: float = 0.8
    """Fraction of words containing an alphabetic character."""


def gopher_quality(df: pd.DataFrame, cfg: GopherQualityConfig) -> StepResult:
    reasons, n_words_col, avg_len_col = [], [], []
    for text in df["text"]:
        words = doc_words(text)
        n = max(len(words), 1)
        counts = Counter(words)
        nc = chars = alpha = 0
        for w, c in counts.items():  # each distinct word once
            if w.isalpha():
                nc, chars, alpha = nc + c, chars + c * len(w), alpha + c
                continue
            if any(ch not in PUNCTUATION for ch in w):  # words that are not pure punctuation
                nc, chars = nc + c, chars + c * len(w)
            if any(ch.isalpha() for ch in w):
                alpha += c
        avg = chars / nc if nc else 0.0
        n_words_col.append(nc)
        avg_len_col.append(avg)
        lines = text.splitlines() or [""]
        reason = None
        if nc < cfg.min_words:
            reason = "gopher_short_doc"
        elif nc > cfg.max_words:
            reason = "gopher_long_doc"
        elif avg < cfg.min_avg_word_length:
            reason = "gopher_below_avg_threshold"
        elif avg > cfg.max_avg_word_length:
            reason = "gopher_above_avg_threshold"
        elif text.count("#") / n > cfg.max_symbol_word_ratio:
            reason = "gopher_too_many_hashes"
        elif (text.count("...") + text.count("…")) / n > cfg.max_symbol_word_ratio:
            reason = "gopher_too_many_ellipsis"
        elif sum(ln.lstrip().startswith(("•", "-")) for ln in lines) / len(lines) > 0.9:
            reason = "gopher_too_many_bullets"
        elif sum(ln.rstrip().endswith(("...", "…")) for ln in lines) / len(lines) > 0.3:
            reason = "gopher_too_many_end_ellipsis"
        elif alpha / n < cfg.min_alpha_word_fraction:
            reason = "gopher_below_alpha_threshold"
        elif len(STOP_WORDS.intersection(counts)) < 2:  # distinct, case-sensitive (datatrove)
            reason = "gopher_enough_stop_words"
        reasons.append(reason)
    return result(df, reasons, {"num_words": np.array(n_words_col), "avg_word_length": np.array(avg_len_col)})
