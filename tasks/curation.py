"""Curation rules: pure functions over a pandas batch of documents.

Each rule takes the batch and its config section and returns a `StepResult`: the (possibly rewritten) batch, a
boolean keep mask and a reason per dropped row, plus signal columns to keep. Batching, rejects writing, timing
and conservation checks live once, in tasks/curate.py. Thresholds and definitions follow the published
recipes (Gopher, as implemented in datatrove's GopherQualityFilter / GopherRepetitionFilter).
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
import string
import unicodedata
from dataclasses import dataclass, field

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


def _bases(words: str) -> str:
    """'do does' -> '[Dd]o|[Dd]oes' (spaCy's exceptions exist in lower and title case)."""
    return "|".join(f"[{w[0].upper()}{w[0]}]{w[1:]}" for w in words.split())


# Words that spaCy's English exceptions split before a clitic: do|n't, I|'d, you|'ll ... (facts from spaCy's
# tokenizer_exceptions). Other words keep inner apostrophes whole (kill'd, ne'er, l'envoy), as spaCy does.
_NT_WORDS = ("ai are ca could dare did do does had has have is may might must need ought sha should was were wo "
             "would").split()
_NT_BASES = _bases(" ".join(_NT_WORDS))
_CLITIC_BASES = _bases("could he how i it might must not she should that there these they this those we what "
                       "when where who why would you")
_WORD_TOKENS = re.compile(
    r"\w+\]\(https?://[^/\s)]+"        # markdown link text glued to its host, as spaCy's URL rule leaves it
    r"|(?:https?://|www\.)[^\s()\[\]<>\"']+(?<![.,;:!?])"  # URLs stay whole, minus trailing punctuation
    r"|(?:[\w-]+\.)+[a-z]{2,63}/[^\s()\[\]<>\"']*(?<![.,;:!?])"  # host/path without a scheme
    r"|\w+[,.;:!?']*-{2,}(?=\s|$)"     # "lord,--" at the end of a chunk: spaCy splits nothing
    r"|(?:[A-Za-z]\.)+(?![A-Za-z])"     # abbreviations and initials: e.g. A.B. I.
    r"|\w*\d(?:[.,:]\d+)+"             # numbers and dotted ids: 3.5 1,000 10:30 T1016.002
    r"|[\w\[]*\\[\w\\\[]*"                 # backslashes split nothing: "\[Aside" C\dir\file
    r"|[Cc]an(?=not\b)|[Gg]on(?=na\b)|[Gg]ot(?=ta\b)"  # cannot -> can not
    rf"|(?:{_NT_BASES})(?=n['’]?t\b)|n['’]t\b"          # don't -> do n't, dont -> do nt
    rf"|(?:{_CLITIC_BASES})(?=['’](?:d|ll|ve|re|m|s)\b)"  # I'd -> I 'd, you'll -> you 'll
    r"|\w+(?=['’][sS]\b)"              # 's splits off any word
    r"|[A-Za-z]\+\+"                     # C++
    r"|\w+\.\(\w+|\w+\)\(\w+"            # "data.(Citation", "2018)(Citation": no space, spaCy keeps it whole
    r"|\w+\(\w+(?=\))"                   # "domain(s)" -> domain(s )
    r"|[Aa]nd/[Oo]r\b"                    # and/or (a spaCy exception)
    r"|\w+(?:['’]\w+)+"                 # inner apostrophes stay: kill'd ne'er o'er l'envoy
    r"|\w+(?:(?:(?<![a-z])\.|\.(?![A-Z]))\w+)+"  # dotted names (Regsvr32.exe); spaCy splits only lower.Upper
    r"|(?:(?<!\S)/+)?\w+(?:-\d+)*(?:/+(?![A-Za-z])\w*)*"  # words; CWE-79 whole; "/" splits before a letter
    r"|['’](?:em|cause|bout|nuff|cos|coz|cuz|Cause|Cos|Coz|Cuz)\b"  # spaCy's whole leading-apostrophe words
    r"|['’](?:s|re|ve|ll|d|m|S|RE|VE|LL|D|M)\b"  # clitics: 's 'll ’s (a leading ' elsewhere is punctuation)
    r"|\.{2,}|-{2,}|[^\w\s]")           # punctuation: one token per character, but ... and -- whole


# Alphabetic chunks that the token pattern splits (cannot, gonna, dont, ...); every other alphabetic chunk is
# one token, so the pattern only runs on chunks that hold punctuation, digits or one of these.
_SPLIT_ALPHA = frozenset(["cannot", "gonna", "gotta"] + [w + "nt" for w in _NT_WORDS])
_TRAIL = frozenset(".,;:!?)\"")
_LEAD = frozenset("(\"")


def split_words(text: str) -> list[str]:
    """Word tokens with punctuation as separate tokens, matching the spaCy English tokenizer that datatrove's
    filters use (without spaCy's cost): whitespace chunks, the common shapes (word, word + one trailing or
    leading mark) directly, the rest through one token pattern."""
    out: list[str] = []
    add, extend, find = out.append, out.extend, _WORD_TOKENS.findall
    for chunk in text.split():
        if chunk.isalpha():
            if chunk.lower() in _SPLIT_ALPHA:
                extend(find(chunk))
            else:
                add(chunk)
            continue
        head, last = chunk[:-1], chunk[-1:]
        if last in _TRAIL and len(head) > 1 and head.isalpha() and head.lower() not in _SPLIT_ALPHA:
            add(head)
            add(last)
        elif chunk[:1] in _LEAD and chunk[1:].isalpha() and chunk[1:].lower() not in _SPLIT_ALPHA:
            add(chunk[:1])
            add(chunk[1:])
        else:
            extend(find(chunk))
    return out


def _words(text: str) -> list[str]:
    return split_words(text)


def gopher_quality(df: pd.DataFrame, cfg) -> StepResult:
    """Gopher quality rules (Rae et al. 2021, datatrove GopherQualityFilter)."""
    reasons, n_words_col, avg_len_col = [], [], []
    for text in df["text"]:
        words = _words(text)
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
    return _result(df, reasons, {"num_words": np.array(n_words_col), "avg_word_length": np.array(avg_len_col)})


_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")
TOP_NGRAMS = ((2, 0.2), (3, 0.18), (4, 0.16))  # Gopher: most frequent n-gram's character share
DUP_NGRAMS = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))  # duplicated n-grams' share


def _duplicates(items: list[str]) -> tuple[int, int]:
    seen: set[str] = set()
    n = chars = 0
    for x in items:
        if x in seen:
            n += 1
            chars += len(x)
        else:
            seen.add(x)
    return n, chars


def _ngram_ids(word_ids: np.ndarray, n: int) -> np.ndarray:
    """Collision-resistant 64-bit ids of word n-grams (polynomial over per-document word ids)."""
    out = np.zeros(len(word_ids) - n + 1, dtype=np.uint64)
    for i in range(n):
        out = out * np.uint64(0x9E3779B97F4A7C15) + word_ids[i:len(word_ids) - n + 1 + i]
    return out


def repetition_reason(text: str, cfg) -> tuple[str | None, float]:
    """Gopher repetition rules (datatrove GopherRepetitionFilter); returns (reason, duplicate-line fraction)."""
    size = max(len(text), 1)
    paragraphs = _PARAGRAPHS.split(text.strip())
    dup, chars = _duplicates(paragraphs)
    if dup / len(paragraphs) > cfg.max_duplicate_paragraph_fraction:
        return "dup_para_frac", 0.0
    if chars / size > 0.2:
        return "dup_para_char_frac", 0.0
    lines = _LINES.split(text)
    dup, chars = _duplicates(lines)
    line_frac = dup / len(lines)
    if line_frac > cfg.max_duplicate_line_fraction:
        return "dup_line_frac", line_frac
    if chars / size > 0.2:
        return "dup_line_char_frac", line_frac
    words = split_words(text)
    if len(words) < 2:
        return None, line_frac
    codes, uniques = pd.factorize(np.array(words, dtype=object), sort=False)
    ids = codes.astype(np.uint64)
    wlen = np.fromiter(map(len, uniques), dtype=np.int64, count=len(uniques))[codes]
    csum = np.concatenate([[0], np.cumsum(wlen)])
    for n, frac in TOP_NGRAMS:
        if len(words) < n:
            break
        g = _ngram_ids(ids, n)
        uniq, first, counts = np.unique(g, return_index=True, return_counts=True)
        best = int(np.argmax(counts))  # datatrove: Counter.most_common(1) (first-seen among ties)
        ties = np.flatnonzero(counts == counts[best])
        best = ties[np.argmin(first[ties])]
        start = first[best]  # datatrove counts the top n-gram even when it occurs once
        gram_chars = csum[start + n] - csum[start] + (n - 1)  # joined with spaces
        if gram_chars * counts[best] / size > frac:
            return f"top_{n}_gram", line_frac
    for n, frac in DUP_NGRAMS:
        if len(words) < n:
            break
        _, inv, counts = np.unique(_ngram_ids(ids, n), return_inverse=True, return_counts=True)
        multi = np.flatnonzero(counts[inv] > 1)
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


def gopher_repetition(df: pd.DataFrame, cfg) -> StepResult:
    """Gopher repetition: duplicated paragraphs and lines, top n-grams, duplicated n-grams."""
    out = [repetition_reason(t, cfg) for t in df["text"]]
    return _result(df, [r for r, _ in out], {"dup_line_fraction": np.array([f for _, f in out])})


def dedup_key(text: str) -> str:
    """Exact-duplicate key: hash of the lower-cased text with whitespace collapsed."""
    return hashlib.sha1(" ".join(text.lower().split()).encode("utf-8", "surrogatepass")).hexdigest()
