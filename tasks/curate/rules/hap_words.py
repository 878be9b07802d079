"""The words of documents that the HAP readers look for, found in bulk: each document's UTF-8 bytes translated
once, Arrow's C++ kernels splitting them into [a-z]+ words and testing those against a set of cue words, so that
only the few words found become Python strings (hap.py's rules, readers and learned-model selection each
intersect a document's words with their own set: the union of those sets is all they need)."""
from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

_WORD = re.compile(r"[a-z]+")

_NOT_AZ = bytes(c if ord("a") <= c <= ord("z") else ord(" ") for c in range(256))


def _words_of(low: str) -> set[str]:
    """The [a-z]+ words of lower-cased text (bytes.translate + split for ASCII text, the regex otherwise)."""
    if low.isascii():
        return set(low.encode("ascii").translate(_NOT_AZ).decode("ascii").split())
    return set(_WORD.findall(low))


def doc_words(docs: list[str], cues: frozenset[str]) -> list[set[str]]:
    """The [a-z]+ words of each lower-cased document that are among `cues`."""
    return read_words(docs, cues)[0]


def read_words(docs: list[str], cues: frozenset[str]) -> tuple[list[set[str]], np.ndarray]:
    """The [a-z]+ words of each lower-cased document that are among `cues`, and whether it holds three words of
    one letter in a row (what letters spaced out, "f u c k", need: `plain_forms` looks for them only there). Each
    document's UTF-8 bytes are translated once (every byte but a-z made a space: the bytes of a non-ASCII character
    are all >= 128), Arrow's C++ kernels split them and test the words against `cues`: only the few words found
    become Python strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out: list[set[str]] = [set() for _ in docs]
    spaced = np.ones(len(docs), dtype=bool)
    data, rows = [], []
    for i, d in enumerate(docs):
        try:
            data.append(d.encode("utf-8").translate(_NOT_AZ))
            rows.append(i)
        except UnicodeEncodeError:  # a lone surrogate
            out[i] = cues.intersection(_WORD.findall(d))
    if data:
        tokens = pc.ascii_split_whitespace(pa.array(data, pa.large_string()))
        flat = tokens.flatten()
        names, array = _cue_array(cues)
        at = pc.index_in(flat, value_set=array).fill_null(-1).to_numpy().astype(np.int64)
        owner = np.repeat(np.arange(len(data), dtype=np.int64), np.diff(tokens.offsets.to_numpy()))
        found = at >= 0
        pairs = np.unique(owner[found] * len(names) + at[found])  # (document, word) once each
        for o, w in zip((pairs // len(names)).tolist(), (pairs % len(names)).tolist()):
            out[rows[o]].add(names[w])
        one = pc.binary_length(flat).to_numpy() == 1
        three = one[:-2] & one[1:-1] & one[2:] & (owner[:-2] == owner[2:])
        spaced[rows] = np.bincount(owner[:-2][three], minlength=len(data)) > 0 if len(one) > 2 else False
    return out, spaced


@lru_cache(maxsize=4)
def _cue_array(cues: frozenset[str]):
    import pyarrow as pa

    names = sorted(cues)
    return names, pa.array(names, pa.large_string())
