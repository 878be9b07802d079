"""alt-profanity-check's classifier (TF-IDF over word unigrams, five linear SVMs, each with a sigmoid calibration,
averaged) evaluated on many sentences at once, with the same result as its `predict_prob` (tests check to 1e-9).

The package scores a list of sentences through scikit-learn: a Python loop over the tokens of each sentence to
build a sparse matrix, then `np.apply_along_axis` over the rows. Here the sentences of a batch are tokenized
together: in `predict_lines` (what hap.py calls) by Arrow's C++ kernels (split into lines, lines into tokens,
tokens looked up in the vocabulary); in `predict_prob`, and for text in another script, in one split on non-word
characters of the concatenation (a separator word marks where each sentence ends) and one dict lookup per token;
the TF-IDF norms and the five decision values are `np.bincount`s: about 3x faster. The model's numbers are read
from the installed wheel, nothing else is loaded."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_SEP = "qqkeelsentencebreakqq"  # a \w\w+ token no sentence contains once removed from its text


@dataclass(frozen=True)
class LinearTfidf:
    vocabulary: dict[str, int]  # and the separator, with the id len(idf)
    vocabulary_bytes: dict[bytes, int]  # its ASCII words, as bytes
    vocabulary_arrow: object  # its words in id order, a pyarrow string array (index_in gives the id)
    idf: np.ndarray          # (V,)
    coef: np.ndarray         # (V, K): one column per calibrated SVM
    intercept: np.ndarray    # (K,)
    a: np.ndarray            # (K,) sigmoid calibration: p = 1 / (1 + exp(a * d + b))
    b: np.ndarray
    nonword: re.Pattern


@lru_cache(maxsize=1)
def model() -> LinearTfidf:
    from profanity_check import profanity_check as pc

    vec, cal = pc.vectorizer, pc.model
    params = vec.get_params()
    if (params["token_pattern"] != r"(?u)\b\w\w+\b" or params["ngram_range"] != (1, 1)
            or params["analyzer"] != "word" or not params["lowercase"]
            or params["norm"] != "l2" or params["sublinear_tf"] or not params["use_idf"] or params["binary"]
            or list(cal.classes_) != [0, 1] or cal.method != "sigmoid"):
        raise RuntimeError("alt-profanity-check's model is not the TF-IDF + calibrated linear SVM this scorer reads")
    members = cal.calibrated_classifiers_
    vocabulary = {**vec.vocabulary_, _SEP: len(vec.idf_)}
    return LinearTfidf(
        vocabulary=vocabulary, vocabulary_bytes={k.encode(): i for k, i in vocabulary.items() if k.isascii()},
        vocabulary_arrow=pa.array(sorted(vocabulary, key=vocabulary.__getitem__), pa.string()),
        idf=np.asarray(vec.idf_, dtype=np.float64),
        coef=np.stack([np.asarray(m.estimator.coef_[0], dtype=np.float64) for m in members], axis=1),
        intercept=np.array([float(m.estimator.intercept_[0]) for m in members]),
        a=np.array([float(m.calibrators[0].a_) for m in members]),
        b=np.array([float(m.calibrators[0].b_) for m in members]),
        nonword=re.compile(r"\W+"))


def predict_prob(sentences: list[str]) -> np.ndarray:
    """Probability of being offensive, per sentence (alt-profanity-check's `predict_prob`)."""
    n = len(sentences)
    if n == 0:
        return np.zeros(0)
    m = model()
    ascii_rows = [i for i, s in enumerate(sentences) if s.isascii()]
    if len(ascii_rows) == n:
        return _decide(m, _ascii_ids(m, sentences), n)
    other_rows = [i for i, s in enumerate(sentences) if not s.isascii()]
    out = np.empty(n)
    out[ascii_rows] = _decide(m, _ascii_ids(m, [sentences[i] for i in ascii_rows]), len(ascii_rows))
    out[other_rows] = _decide(m, _unicode_ids(m, [sentences[i] for i in other_rows]), len(other_rows))
    return out


def predict_lines(low: str, n: int) -> np.ndarray:
    """`predict_prob` of the `n` lines of lower-cased `low` (sentences joined by "\\n", none holding the separator
    word), in one string, so no per-sentence string is built; a line without a word character (blank,
    punctuation) scores 0, not the package's score of an empty sentence (it holds nothing to judge).

    Tokenized in Arrow's C++ kernels: one bytes.translate of the UTF-8 text turns the ASCII bytes that are no word
    character into spaces (newlines kept); Arrow splits it into lines and the lines into tokens, and looks the
    tokens up in the vocabulary, with no Python object per token. A token holding non-ASCII characters ("don’t",
    "naïve") is split again by the package's own rule, `\\W+` over Unicode; text whose UTF-8 form is over 5% longer
    than its characters (another script) is split that way as a whole instead."""
    if n == 0:
        return np.zeros(0)
    m = model()
    try:
        data = low.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the text as Python reads it
        return _predict_lines_python(m, low, n)
    if len(data) > 1.05 * len(low):  # text mostly in another script: Python's split is faster than splitting twice
        return _predict_lines_python(m, low, n)
    lines = pc.split_pattern(pa.array([data.translate(_LINE_BYTES)], pa.large_string()), "\n").flatten()
    tokens = pc.ascii_split_whitespace(lines)  # ("" at either end of a line that starts or ends with spaces)
    flat = tokens.flatten()
    row = np.repeat(np.arange(len(lines)), np.diff(tokens.offsets.to_numpy()))
    ids = pc.index_in(flat, value_set=m.vocabulary_arrow).fill_null(-1).to_numpy().astype(np.int64)
    real = pc.binary_length(flat).to_numpy() > 0
    if not low.isascii():  # tokens holding other characters: split again, all in one regular-expression pass
        other = np.flatnonzero(~pc.string_is_ascii(flat).to_numpy(zero_copy_only=False))
        pieces = [t for t in m.nonword.split(f" {_SEP} ".join(flat.take(pa.array(other)).to_pylist())) if t]
        more = np.fromiter(map(m.vocabulary.get, pieces, repeat(-1)), dtype=np.int64, count=len(pieces))
        sep = more == len(m.idf)
        owner = row[other][np.cumsum(sep)[~sep]]  # (the separator closes each token's pieces)
        ids[other], real[other] = -1, False
        ids = np.concatenate([ids, more[~sep]])
        row, real = np.concatenate([row, owner]), np.concatenate([real, np.ones(len(owner), dtype=bool)])
    p = _decide_rows(m, row, ids, n)
    words = np.bincount(row[real], minlength=n)
    p[words[:n] == 0] = 0.0
    return p


def _predict_lines_python(m: LinearTfidf, low: str, n: int) -> np.ndarray:
    tokens = [t for t in m.nonword.split(low.replace("\n", f" {_SEP} ")) if t]
    ids = np.fromiter(map(m.vocabulary.get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens))
    p = _decide(m, ids, n)
    is_sep = ids == len(m.idf)
    words = np.bincount(np.cumsum(is_sep)[~is_sep], minlength=n)
    p[words[:n] == 0] = 0.0
    return p


_ASCII_WORD = bytes(c if chr(c).isalnum() or c == ord("_") else ord(" ") for c in range(128)) + b" " * 128
_LINE_BYTES = _ASCII_WORD[:10] + b"\n" + _ASCII_WORD[11:128] + bytes(range(128, 256))
"""UTF-8 bytes: ASCII ones that are no word character made spaces, newlines and non-ASCII bytes kept."""


def _ascii_ids(m: LinearTfidf, sentences: list[str]) -> np.ndarray:
    """Vocabulary ids of the tokens of ASCII sentences, the separator (id V) between sentences, -1 for the rest:
    bytes.translate maps every non-word byte to a space, and split() cuts the runs of word bytes."""
    text = f" {_SEP} ".join(sentences).lower()
    if text.count(_SEP) != len(sentences) - 1:  # a sentence holds the separator word itself: take it out
        text = f" {_SEP} ".join(s.lower().replace(_SEP, " ") for s in sentences)
    text = text.encode("ascii")
    tokens = text.translate(_ASCII_WORD).split()
    return np.fromiter(map(m.vocabulary_bytes.get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens))


def _unicode_ids(m: LinearTfidf, sentences: list[str]) -> np.ndarray:
    text = f" {_SEP} ".join(s.lower().replace(_SEP, " ") for s in sentences)
    tokens = [t for t in m.nonword.split(text) if t]  # runs of \w: the token pattern's matches, and single
    # characters (not in the vocabulary: they count for nothing, as in the package)
    return np.fromiter(map(m.vocabulary.get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens))


def _decide(m: LinearTfidf, ids: np.ndarray, n: int) -> np.ndarray:
    """Probabilities of `n` sentences whose token ids are `ids`, sentences separated by the separator's id."""
    is_sep = ids == len(m.idf)
    return _decide_rows(m, np.cumsum(is_sep)[~is_sep], ids[~is_sep], n)


def _decide_rows(m: LinearTfidf, sent: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    """Probabilities of `n` sentences from their tokens' sentence numbers `sent` and vocabulary ids `ids` (-1: not
    in the vocabulary)."""
    v = len(m.idf)
    keep = ids >= 0
    sent, ids = sent[keep], ids[keep]
    key, tf = np.unique(sent * v + ids, return_counts=True)
    row, col = key // v, key % v
    w = tf * m.idf[col]
    norm = np.sqrt(np.bincount(row, w * w, minlength=n))
    dots = np.stack([np.bincount(row, w * m.coef[col, k], minlength=n) for k in range(m.coef.shape[1])],
                    axis=1).astype(np.float64)  # (bincount of no weights is an integer array)
    d = np.divide(dots, norm[:, None], out=np.zeros_like(dots), where=norm[:, None] > 0) + m.intercept
    p = (1.0 / (1.0 + np.exp(m.a * d + m.b))).mean(axis=1)
    p[(1.0 < p) & (p <= 1.0 + 1e-5)] = 1.0
    return p
