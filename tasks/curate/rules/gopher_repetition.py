"""Rule `gopher_repetition`: the Gopher repetition rules as datatrove's GopherRepetitionFilter defines them:
duplicated paragraphs and lines (count and character share), the top 2-4-gram's character share, duplicated
5-10-grams' character share, with the published thresholds."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.curate.step import StepResult, result
from tasks.curate.text import doc_words, duplicates


@dataclass(frozen=True)
class GopherRepetitionConfig:
    max_duplicate_line_fraction: float = 0.3
    """Fraction of lines that duplicate an earlier line."""
    max_duplicate_paragraph_fraction: float = 0.3
    """Fraction of paragraphs that duplicate an earlier one."""


_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")
TOP_NGRAMS = ((2, 0.2), (3, 0.18), (4, 0.16))  # Gopher: most frequent n-gram's character share
DUP_NGRAMS = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))  # duplicated n-grams' share


def _ngram_ids(word_ids: np.ndarray, n: int) -> np.ndarray:
    """Collision-resistant 64-bit ids of word n-grams (polynomial over per-document word ids)."""
    out = np.zeros(len(word_ids) - n + 1, dtype=np.uint64)
    for i in range(n):
        out = out * np.uint64(0x9E3779B97F4A7C15) + word_ids[i:len(word_ids) - n + 1 + i]
    return out


def repetition_reason(text: str, cfg: GopherRepetitionConfig) -> tuple[str | None, float]:
    """Gopher repetition rules (datatrove GopherRepetitionFilter); returns (reason, duplicate-line fraction)."""
    size = max(len(text), 1)
    paragraphs = _PARAGRAPHS.split(text.strip())
    dup, chars = duplicates(paragraphs)
    if dup / len(paragraphs) > cfg.max_duplicate_paragraph_fraction:
        return "dup_para_frac", 0.0
    if chars / size > 0.2:
        return "dup_para_char_frac", 0.0
    lines = _LINES.split(text)
    dup, chars = duplicates(lines)
    line_frac = dup / len(lines)
    if line_frac > cfg.max_duplicate_line_fraction:
        return "dup_line_frac", line_frac
    if chars / size > 0.2:
        return "dup_line_char_frac", line_frac
    words = doc_words(text)
    if len(words) < 2:
        return None, line_frac
    codes, uniques = pd.factorize(np.array(words, dtype=object), sort=False)
    ids = codes.astype(np.uint64)
    wlen = np.fromiter(map(len, uniques), dtype=np.int64, count=len(uniques))[codes]
    csum = np.concatenate([[0], np.cumsum(wlen)])
    for n, frac in TOP_NGRAMS:
        if len(words) < n:
            break
        grams = pd.factorize(_ngram_ids(ids, n), sort=False)[0]  # numbered in order of first occurrence
        counts = np.bincount(grams)
        best = int(np.argmax(counts))  # datatrove: Counter.most_common(1), the first seen among ties
        start = int(np.argmax(grams == best))  # datatrove counts the top n-gram even when it occurs once
        gram_chars = csum[start + n] - csum[start] + (n - 1)  # joined with spaces
        if gram_chars * counts[best] / size > frac:
            return f"top_{n}_gram", line_frac
    for n, frac in DUP_NGRAMS:
        if len(words) < n:
            break
        inv = pd.factorize(_ngram_ids(ids, n), sort=False)[0]
        multi = np.flatnonzero(np.bincount(inv)[inv] > 1)
        if not len(multi):
            break  # no repeated n-gram of this length, hence none longer
        # datatrove's find_all_duplicate walks every position, skipping n after a repeat; positions whose n-gram
        # occurs once never count, so only the others are visited (same result)
        seen: set[int] = set()
        repeated, idx, gram = 0, 0, inv.tolist()
        for p in multi.tolist():
            if p < idx:
                continue
            if gram[p] in seen:
                repeated += int(csum[p + n] - csum[p])
                idx = p + n
            else:
                seen.add(gram[p])
                idx = p + 1
        if repeated / size > frac:
            return f"duplicated_{n}_n_grams", line_frac
    return None, line_frac


def gopher_repetition(df: pd.DataFrame, cfg: GopherRepetitionConfig) -> StepResult:
    """Gopher repetition: duplicated paragraphs and lines, top n-grams, duplicated n-grams."""
    out = [repetition_reason(t, cfg) for t in df["text"]]
    return result(df, [r for r, _ in out], {"dup_line_fraction": np.array([f for _, f in out])})
