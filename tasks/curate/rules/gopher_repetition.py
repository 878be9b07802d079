"""Rule `gopher_repetition`: the Gopher repetition rules as datatrove's GopherRepetitionFilter defines them:
duplicated paragraphs and lines (count and character share), the top 2-4-gram's character share, duplicated
5-10-grams' character share, with the published thresholds."""
from __future__ import annotations

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


TOP_NGRAMS = ((2, 0.2), (3, 0.18), (4, 0.16))  # Gopher: most frequent n-gram's character share
DUP_NGRAMS = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))  # duplicated n-grams' share
_MULT = np.uint64(0x9E3779B97F4A7C15)


def split_paragraphs(text: str) -> list[str]:
    """`re.split(r"\n{2,}", text)` for a stripped text, without the regex engine: a run of k newlines splits
    `str.split("\n\n")` into k // 2 - 1 empty pieces and, when k is odd, one newline at the start of the next."""
    if not text:
        return [text]
    return [p[1:] if p[0] == "\n" else p for p in text.split("\n\n") if p]


def split_lines(text: str) -> list[str]:
    """`re.split(r"\n+", text)` without the regex engine: the empty pieces between newlines dropped, those at the
    ends (a text starting or ending with a newline) kept."""
    parts = text.split("\n")
    if len(parts) < 3:
        return parts
    return [parts[0], *filter(None, parts[1:-1]), parts[-1]]


def _ngram_ids(word_ids: np.ndarray, n: int) -> np.ndarray:
    """Collision-resistant 64-bit ids of word n-grams (polynomial over per-document word ids)."""
    out = np.zeros(len(word_ids) - n + 1, dtype=np.uint64)
    for i in range(n):
        out = out * _MULT + word_ids[i:len(word_ids) - n + 1 + i]
    return out


def _longer(grams: np.ndarray, word_ids: np.ndarray, n: int) -> np.ndarray:
    """The ids of the n-grams from those of the (n-1)-grams: `_ngram_ids(word_ids, n)`, one step of its loop."""
    return grams[:-1] * _MULT + word_ids[n - 1:]


def _window_min(values: np.ndarray, m: int) -> np.ndarray:
    """The minimum of each run of m consecutive values (len(values) - m + 1 of them)."""
    out = values[:len(values) - m + 1]
    for j in range(1, m):
        out = np.minimum(out, values[j:len(values) - m + 1 + j])
    return out


def _covered(starts: np.ndarray, n: int, wlen: np.ndarray) -> int:
    """Characters of the words under at least one of the n-word windows starting at `starts` (increasing)."""
    if not len(starts):
        return 0
    edge = np.zeros(len(wlen) + n + 1, dtype=np.int64)
    edge[starts] += 1
    edge[starts + n] -= 1
    return int(wlen[np.cumsum(edge[:len(wlen)]) > 0].sum())


def repetition_reason(text: str, cfg: GopherRepetitionConfig) -> tuple[str | None, float]:
    """Gopher repetition rules (datatrove GopherRepetitionFilter); returns (reason, duplicate-line fraction)."""
    size = max(len(text), 1)
    paragraphs = split_paragraphs(text.strip())
    dup, chars = duplicates(paragraphs)
    if dup / len(paragraphs) > cfg.max_duplicate_paragraph_fraction:
        return "dup_para_frac", 0.0
    if chars / size > 0.2:
        return "dup_para_char_frac", 0.0
    lines = split_lines(text)
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
    # An n-gram occurs at most as often as any k-gram inside it (k < n). `at[p]`: how often the k-gram at p
    # occurs, for the longest k counted so far (words first). That bounds each rule from above, and a rule whose
    # bound is not past its threshold is not computed: the same result, without counting most n-gram lengths.
    at, k = np.bincount(codes)[codes], 1
    gram_ids = ids
    for n, frac in TOP_NGRAMS:
        if len(words) < n:
            break
        gram_ids = _longer(gram_ids, ids, n)
        chars = csum[n:] - csum[:-n] + (n - 1)  # each n-gram's characters, joined with spaces
        if int((chars * _window_min(at, n - k + 1)).max()) / size <= frac:
            continue
        grams = pd.factorize(gram_ids, sort=False)[0]  # numbered in order of first occurrence
        counts = np.bincount(grams)
        best = int(np.argmax(counts))  # datatrove: Counter.most_common(1), the first seen among ties
        start = int(np.argmax(grams == best))  # datatrove counts the top n-gram even when it occurs once
        if int(chars[start]) * counts[best] / size > frac:
            return f"top_{n}_gram", line_frac
        at, k = counts[grams], n
    # Every n-gram counted below is a repeated one and they do not overlap, so the characters counted for an n are
    # at most those of the words under an n-gram that may repeat: one whose k-grams (the longest counted) all do.
    repeats = _window_min(at > 1, 5 - k + 1) if len(words) >= 5 else at[:0] > 1  # 5-grams that may repeat
    for n, frac in DUP_NGRAMS:
        if len(words) < n:
            break
        gram_ids = _longer(gram_ids, ids, n)
        if n > 5:  # an n-gram repeats only where the (n-1)-grams at p and p + 1 both do
            repeats = repeats[:-1] & repeats[1:]
        if _covered(np.flatnonzero(repeats), n, wlen) / size <= frac:
            continue  # no rule of this length can fire (above)
        inv = pd.factorize(gram_ids, sort=False)[0]
        repeats = np.bincount(inv)[inv] > 1
        multi = np.flatnonzero(repeats)
        if not len(multi):
            break  # no repeated n-gram of this length, hence none longer
        if _covered(multi, n, wlen) / size <= frac:
            continue
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
