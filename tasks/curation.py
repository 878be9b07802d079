"""Curation rules: pure functions over a pandas batch of documents.

Each rule takes the batch and its config section and returns a `StepResult`: the (possibly rewritten) batch, a
boolean keep mask and a reason per dropped row, plus signal columns to keep. Batching, rejects writing, timing
and conservation checks live once, in tasks/curate.py. Thresholds and definitions follow the published
recipes (Gopher, as implemented in datatrove's GopherQualityFilter / GopherRepetitionFilter).
"""
from __future__ import annotations

import hashlib
import re
import string
import unicodedata
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

STOP_WORDS = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])  # Gopher
PUNCTUATION = frozenset(string.punctuation + "‘’“”«»…–—¡¿·")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")
_BLANKS = re.compile(r"\n{3,}")


@dataclass
class StepResult:
    frame: pd.DataFrame
    keep: np.ndarray
    reasons: np.ndarray
    signals: dict[str, np.ndarray] = field(default_factory=dict)


def _result(df: pd.DataFrame, reasons: list, signals: dict | None = None) -> StepResult:
    r = np.array(reasons, dtype=object)
    return StepResult(df, np.array([x is None for x in reasons], dtype=bool), r, signals or {})


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", ln).strip() for ln in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def normalize(df: pd.DataFrame, cfg) -> StepResult:
    """Unicode NFC, control characters removed, whitespace collapsed; empty results are rejected."""
    df = df.assign(text=[normalize_text(t) for t in df["text"]])
    return _result(df, [None if t else "empty_after_normalization" for t in df["text"]])


def _words(text: str) -> list[str]:
    return text.split()


def gopher_quality(df: pd.DataFrame, cfg) -> StepResult:
    """Gopher quality rules (Rae et al. 2021, datatrove GopherQualityFilter)."""
    reasons, n_words_col, avg_len_col = [], [], []
    for text in df["text"]:
        words = _words(text)
        n = max(len(words), 1)
        content = [w for w in words if any(ch not in PUNCTUATION for ch in w)]
        nc = len(content)
        avg = float(np.mean([len(w) for w in content])) if content else 0.0
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
        elif sum(any(ch.isalpha() for ch in w) for w in words) / n < cfg.min_alpha_word_fraction:
            reason = "gopher_below_alpha_threshold"
        elif sum(w.lower() in STOP_WORDS for w in words) < 2:
            reason = "gopher_enough_stop_words"
        reasons.append(reason)
    return _result(df, reasons, {"num_words": np.array(n_words_col), "avg_word_length": np.array(avg_len_col)})


def gopher_repetition(df: pd.DataFrame, cfg) -> StepResult:
    """Gopher repetition: fraction of duplicated lines and of characters in duplicated lines."""
    reasons, frac_col = [], []
    for text in df["text"]:
        lines = [ln for ln in text.split("\n") if ln.strip()]
        seen, dup, dup_chars = set(), 0, 0
        for ln in lines:
            if ln in seen:
                dup += 1
                dup_chars += len(ln)
            seen.add(ln)
        frac = dup / max(len(lines), 1)
        frac_col.append(frac)
        if frac > cfg.max_duplicate_line_fraction:
            reasons.append("dup_line_frac")
        elif dup_chars / max(len(text), 1) > 0.2:
            reasons.append("dup_line_char_frac")
        else:
            reasons.append(None)
    return _result(df, reasons, {"dup_line_fraction": np.array(frac_col)})


def dedup_key(text: str) -> str:
    """Exact-duplicate key: hash of the lower-cased text with whitespace collapsed."""
    return hashlib.sha1(" ".join(text.lower().split()).encode("utf-8", "surrogatepass")).hexdigest()
