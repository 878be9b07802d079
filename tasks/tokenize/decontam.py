"""Decontamination: training documents that share a 13-gram of words with an evaluation item (a held-out
document, whose windows are scored, or a downstream task item built from one) are rejected before tokenization
with reason `eval_contamination:<task>`.

Words are lower-cased runs of letters and digits (punctuation and spacing do not hide an overlap). An n-gram is
hashed to 64 bits from its words' hashes (numpy, vectorised), so the index is one sorted array plus a label per
hash. An n-gram found in more than `max_doc_frequency` training documents is common phrasing or boilerplate
(licence headers, templated sections), not a leak of one evaluation item, and is ignored; a planted item or a
copied held-out passage is found in few documents and counts.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import xxhash

from tasks.core.cluster import read_parquet

WORD = re.compile(r"[^\W_]+")
_MULT = np.uint64(0x9E3779B97F4A7C15)


@lru_cache(maxsize=1 << 18)
def _word_hash(w: str) -> int:
    return xxhash.xxh64_intdigest(w)


def ngram_hashes(text: str, n: int) -> np.ndarray:
    """64-bit hashes of the word n-grams of `text` (empty when it has fewer than n words)."""
    words = WORD.findall(text.lower())
    if len(words) < n:
        return np.zeros(0, dtype=np.uint64)
    h = np.fromiter((_word_hash(w) for w in words), dtype=np.uint64, count=len(words))
    m = len(words) - n + 1
    acc = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            acc = acc * _MULT + h[k:k + m]
    return acc


@dataclass(frozen=True)
class EvalIndex:
    """Sorted n-gram hashes of every evaluation item, each with the index of the task it belongs to."""
    hashes: np.ndarray
    labels: np.ndarray
    tasks: tuple[str, ...]
    n: int


def build_index(items: dict[str, list[str]], n: int) -> EvalIndex:
    """`items`: task name -> the texts of its items. A hash found in several tasks keeps the first task (tasks in
    the given order: list the downstream tasks before the held-out documents they were drawn from)."""
    names = tuple(items)
    hs, ls = [], []
    for i, name in enumerate(names):
        for text in items[name]:
            h = ngram_hashes(text, n)
            hs.append(h)
            ls.append(np.full(len(h), i, dtype=np.int32))
    if not hs:
        return EvalIndex(np.zeros(0, np.uint64), np.zeros(0, np.int32), names, n)
    h, lab = np.concatenate(hs), np.concatenate(ls)
    order = np.lexsort((lab, h))  # by hash, then task order: the first occurrence is the first task
    h, lab = h[order], lab[order]
    first = np.ones(len(h), dtype=bool)
    first[1:] = h[1:] != h[:-1]
    return EvalIndex(h[first], lab[first], names, n)


def matches(text: str, index: EvalIndex) -> np.ndarray:
    """Distinct evaluation n-gram hashes present in `text`."""
    if not len(index.hashes):
        return np.zeros(0, np.uint64)
    h = np.unique(ngram_hashes(text, index.n))
    return h[np.isin(h, index.hashes, assume_unique=True)]


def scan_part(uri: str, index: EvalIndex, valid: int, test: int) -> dict:
    """On a worker: the evaluation n-grams each training document of a partition contains ({doc_id: hashes}) and
    in how many training documents each was found."""
    from tasks.tokenize.shards import split_of

    df = read_parquet(uri, columns=["doc_id", "text"])
    found, freq = {}, Counter()
    for doc_id, text in zip(df["doc_id"], df["text"]):
        if split_of(doc_id, valid, test) != "train":
            continue
        m = matches(text, index)
        if len(m):
            found[doc_id] = m
            freq.update(m.tolist())
    return {"found": found, "freq": freq}


def contaminated(scans: list[dict], index: EvalIndex, max_doc_frequency: int) -> dict[str, str]:
    """doc_id -> `eval_contamination:<task>` for each training document holding an evaluation n-gram that at most
    `max_doc_frequency` training documents hold."""
    freq = Counter()
    for s in scans:
        freq.update(s["freq"])
    out = {}
    for s in scans:
        for doc_id, hashes in s["found"].items():
            rare = [h for h in hashes.tolist() if freq[h] <= max_doc_frequency]
            if rare:
                pos = np.searchsorted(index.hashes, np.asarray(rare, dtype=np.uint64))
                out[doc_id] = f"eval_contamination:{index.tasks[int(index.labels[pos].min())]}"
    return out
