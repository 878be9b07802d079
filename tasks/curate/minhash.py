"""MinHash near-duplicate detection: word n-gram shingles, LSH banding, global connected components.

Signatures are computed for a whole batch at once: words are hashed once (xxh32), n-gram shingle hashes are
combined from word hashes with numpy, and the (shingles x permutations) matrix is reduced per document with
`np.minimum.reduceat`. Each band of `rows` hashes becomes one 64-bit bucket key. On the driver, documents that
share any bucket are joined (scipy connected components); each cluster keeps its smallest doc_id.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import xxhash

SHIFT = np.uint64(32)
MASK32 = np.uint64(0xFFFFFFFF)
_WORD = re.compile(r"\w+")
CHUNK = 4096  # shingles per matrix chunk (bounds memory: CHUNK x permutations x 8 bytes)


def permutations(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    a = rng.randint(1, np.iinfo(np.uint64).max, size=n, dtype=np.uint64)
    b = rng.randint(0, np.iinfo(np.uint64).max, size=n, dtype=np.uint64)
    return a, b


def shingle_hashes(text: str, n: int) -> np.ndarray:
    """32-bit hashes of the word n-grams of lower-cased text (the whole text if it has fewer than n words)."""
    words = _WORD.findall(text.lower())
    if not words:
        return np.zeros(1, dtype=np.uint64)
    h = np.fromiter((xxhash.xxh32_intdigest(w) for w in words), dtype=np.uint64, count=len(words))
    if len(h) < n:
        return np.array([xxhash.xxh32_intdigest(" ".join(words))], dtype=np.uint64)
    out = np.zeros(len(h) - n + 1, dtype=np.uint64)
    for i in range(n):  # polynomial combination of the n word hashes, mod 2^32
        out = (out * np.uint64(1_000_003) + h[i:len(h) - n + 1 + i]) & MASK32
    return np.unique(out)


def signatures(texts: list[str], ngram: int, num_perm: int, seed: int = 1) -> np.ndarray:
    """(docs x num_perm) uint64 MinHash signatures (multiply-shift hashing, high 32 bits)."""
    a, b = permutations(num_perm, seed)
    a = a | np.uint64(1)
    per_doc = [shingle_hashes(t, ngram) for t in texts]
    sig = np.full((len(texts), num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
    if not per_doc:
        return sig
    flat = np.concatenate(per_doc)
    starts = np.cumsum([0] + [len(x) for x in per_doc])[:-1]
    buf = np.empty((CHUNK, num_perm), dtype=np.uint64)
    for c0 in range(0, len(flat), CHUNK):  # in-place ops on a small buffer: no large temporaries
        x = flat[c0:c0 + CHUNK, None]
        m = buf[:len(x)]
        np.multiply(x, a[None, :], out=m)
        np.add(m, b[None, :], out=m)
        np.right_shift(m, SHIFT, out=m)
        d_lo = np.searchsorted(starts, c0, side="right") - 1
        d_hi = np.searchsorted(starts, c0 + len(x), side="left")
        local = np.maximum(starts[d_lo:d_hi], c0) - c0
        np.minimum(sig[d_lo:d_hi], np.minimum.reduceat(m, local, axis=0), out=sig[d_lo:d_hi])
    return sig


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(docs x bands) 64-bit bucket keys: a hash of each band's `rows` signature values."""
    assert sig.shape[1] >= bands * rows, "signature shorter than bands * rows"
    keys = np.empty((sig.shape[0], bands), dtype=np.uint64)
    for band in range(bands):
        part = np.ascontiguousarray(sig[:, band * rows:(band + 1) * rows])
        keys[:, band] = [xxhash.xxh64_intdigest(r.tobytes(), seed=band) for r in part]
    return keys


def clusters(doc_ids: pd.Series, keys: np.ndarray) -> np.ndarray:
    """Survivor doc_id per document: the smallest doc_id of its connected component of shared buckets."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(doc_ids)
    if n == 0:
        return np.array([], dtype=object)
    src, dst = [], []
    idx = np.arange(n)
    for band in range(keys.shape[1]):
        _, inverse = np.unique(keys[:, band], return_inverse=True)
        first = np.full(inverse.max() + 1, n, dtype=np.int64)
        np.minimum.at(first, inverse, idx)
        head = first[inverse]
        linked = head != idx
        src.append(idx[linked])
        dst.append(head[linked])
    src_a, dst_a = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(src_a)), (src_a, dst_a)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    ids = doc_ids.to_numpy()
    survivor = pd.Series(ids).groupby(label).transform("min").to_numpy()
    return survivor
