"""A hate/abuse classifier the pipeline trains itself, offline, from the labelled texts in
data_contracts/hap/train.jsonl (written for it: hate against groups, harassment, threats and profane abuse, short
and inside longer posts, and hard clean texts that share their vocabulary: reporting on hate, technical, medical,
sports, banter, ordinary text addressed to the reader).

The profanity classifier alt-profanity-check ships was trained to find swear words; the word list and phrase
patterns (hap.py, hap_context.py) find what they spell out. This model scores what neither names: contempt,
insinuation, stereotypes and threats phrased in ordinary words. It is TF-IDF over word 1-2-grams with a logistic
regression, trained in about two seconds when a process first needs it (no pickle is read: the training set
is the model), deterministically (liblinear), and cached by the training file's content.

How its probability enters a document's HAP score (hap.py, `score`): as it is below `REJECT_AT`, so the model
orders documents (what a precision/recall curve and AUROC read, and what a lower `[curate.hap].threshold` acts
on); from `REJECT_AT` on it rejects at the default threshold, but only where the text gives it enough evidence:
`MIN_KNOWN_WORDS` words it knows, and `MIN_KNOWN_SHARE` of the text's words. A fragment ("no pixels are
transparent") or text in a language it never saw scores at most `RANK_CAP`. On the demo and benchmark corpora
(6,878 documents) it rejects 18 documents more than the lexicon and profanity classifier alone (155 -> 173, all
but two of them scenes of Shakespeare); reading every sentence that addresses someone, instead of those naming a
group or holding a listed word, rejected 560 of the 775 Shakespeare scenes, and is not done.
"""
from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from itertools import repeat
from pathlib import Path

import numpy as np

TRAIN = Path(__file__).resolve().parents[3] / "data_contracts" / "hap" / "train.jsonl"
RANK_CAP = 0.98
"""The most the model alone gives a text without enough evidence: under the default threshold 0.99."""
REJECT_AT = 0.85
"""The model's probability from which a text that gives it enough evidence is rejected at the default threshold."""
MIN_KNOWN_WORDS = 6
MIN_KNOWN_SHARE = 0.6
"""Enough evidence: at least this many different words the model knows, and this share of the text's words."""


def enough_evidence(distinct_known: np.ndarray, share_known: np.ndarray) -> np.ndarray:
    return (distinct_known >= MIN_KNOWN_WORDS) & (share_known >= MIN_KNOWN_SHARE)


def score(p: np.ndarray, distinct_known: np.ndarray, share_known: np.ndarray) -> np.ndarray:
    """A text's HAP score from the model: its probability, at most `RANK_CAP`, below `REJECT_AT` or without enough
    evidence; past `REJECT_AT` with enough, 0.99 (the default threshold) up to 1.0, in the order of the
    probabilities."""
    past = (p >= REJECT_AT) & enough_evidence(distinct_known, share_known)
    return np.where(past, 0.99 + 0.01 * (p - REJECT_AT) / (1.0 - REJECT_AT), np.minimum(p, RANK_CAP))


MAX_CHARS = 1200
"""A document up to this long is also scored as a whole (the training texts are one to five sentences)."""
MAX_SENTENCES = 50
"""Sentences of a longer document scored, at most."""


def training_set(path: str | Path = TRAIN) -> tuple[list[str], np.ndarray]:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    bad = [i for i, r in enumerate(rows) if not isinstance(r.get("text"), str) or r.get("label") not in (0, 1)]
    if bad:
        raise ValueError(f"{path}: lines {bad[:5]} need a text and a label 0 or 1")
    return [r["text"] for r in rows], np.array([r["label"] for r in rows], dtype=np.int8)


TOKEN = r"(?u)\b\w[\w']*\b"
_SEP = "qqkeelunitbreakqq"


class Model:
    """TF-IDF over word 1-2-grams (sublinear tf, L2 norm) and a logistic regression, fitted with scikit-learn;
    `predict` evaluates the fitted model on many texts at once (the same probabilities as scikit-learn's, tested):
    the words of ASCII texts split and looked up in Arrow's C++ kernels (of other text, one regular-expression
    pass over the concatenation and a dict lookup per word), word pairs found by a sorted search, and numpy sums
    per text, instead of scikit-learn's Python loop over each text's n-grams."""

    def __init__(self, texts: list[str], labels: np.ndarray):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self.vectorizer = TfidfVectorizer(lowercase=True, ngram_range=(1, 2), sublinear_tf=True, token_pattern=TOKEN,
                                          dtype=np.float64)
        self.clf = LogisticRegression(C=4.0, solver="liblinear", class_weight="balanced", max_iter=1000,
                                      random_state=0)
        self.clf.fit(self.vectorizer.fit_transform(texts), labels)
        self.vocabulary = dict(self.vectorizer.vocabulary_)
        self._sep_id = len(self.vocabulary)
        self._ids = {w: i for w, i in self.vocabulary.items() if " " not in w} | {_SEP: self._sep_id}
        # word pairs by the ids of their two words (both are in the vocabulary: it holds every n-gram of the
        # training texts), sorted for a vectorised lookup
        width = self._sep_id + 1
        pairs = [(self._ids[a] * width + self._ids[b], i) for w, i in self.vocabulary.items() if " " in w
                 for a, b in [w.split(" ")]]
        keys, feats = zip(*sorted(pairs)) if pairs else ((), ())
        self._pair_keys = np.array(keys, dtype=np.int64)
        self._pair_ids = np.array(feats, dtype=np.int64)
        self.idf = self.vectorizer.idf_
        self.coef = self.clf.coef_[0]
        self.intercept = float(self.clf.intercept_[0])
        self.token = re.compile(TOKEN)
        import pyarrow as pa

        words = [w for w in self._ids if w != _SEP]
        self._words = pa.array(words, pa.string())  # for Arrow's lookup
        self._word_ids = np.array([self._ids[w] for w in words], dtype=np.int64)
        self._unigram = np.zeros(len(self.vocabulary), dtype=bool)
        self._unigram[self._word_ids] = True

    def predict(self, texts: list[str]) -> np.ndarray:
        """P(abusive) per text."""
        return self.predict_with_evidence(texts)[0]

    def predict_with_evidence(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P(abusive) per text, with how many different words of it the model knows (from its training texts) and
        the share of its words it knows: a probability read from two known words (or the same two repeated), or
        from a text in a language the model never saw, is no evidence."""
        if not texts:
            return np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0)
        plain = np.fromiter(map(str.isascii, texts), dtype=bool, count=len(texts))
        ids, unit = self._ascii_ids(texts) if plain.all() else self._ids_of(texts) if not plain.any() else (
            self._mixed_ids(texts, plain))
        first, second = ids[:-1], ids[1:]
        pairs = np.full(len(first), -1, dtype=np.int64)
        known = (first >= 0) & (second >= 0) & (unit[:-1] == unit[1:])  # no pair across two texts
        if len(self._pair_keys) and known.any():
            key = first[known] * (self._sep_id + 1) + second[known]
            at = np.minimum(np.searchsorted(self._pair_keys, key), len(self._pair_keys) - 1)
            pairs[known] = np.where(self._pair_keys[at] == key, self._pair_ids[at], -1)
        feat = np.concatenate([ids, pairs])
        owner = np.concatenate([unit, unit[:-1]])
        keep = feat >= 0
        codes, tf = np.unique(owner[keep] * len(self.idf) + feat[keep], return_counts=True)
        who, what = codes // len(self.idf), codes % len(self.idf)
        w = (1.0 + np.log(tf)) * self.idf[what]
        norm = np.sqrt(np.bincount(who, w * w, minlength=len(texts)))
        dot = np.bincount(who, w * self.coef[what], minlength=len(texts))
        decision = np.where(norm > 0, dot / np.where(norm > 0, norm, 1.0), 0.0) + self.intercept
        distinct = np.bincount(who[self._unigram[what]], minlength=len(texts))  # words it knows, each once
        known = np.bincount(unit[ids >= 0], minlength=len(texts))
        share = known / np.maximum(np.bincount(unit, minlength=len(texts)), 1)
        return 1.0 / (1.0 + np.exp(-decision)), distinct, share

    def _ids_of(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The vocabulary id of each token of the texts in order (-1: not a feature) and the text it belongs to:
        one regular-expression pass over their concatenation, one dict lookup per token."""
        joined = f" {_SEP} ".join(texts).lower()
        if joined.count(_SEP) != len(texts) - 1:  # a text holding the separator word itself: each read alone
            each = [self.token.findall(t.lower()) for t in texts]
            toks = [tok for ts in each for tok in ts]
            ids = np.fromiter(map(self._ids.get, toks, repeat(-1)), dtype=np.int64, count=len(toks))
            ids[ids == self._sep_id] = -1  # (a word of the text: no feature)
            return ids, np.repeat(np.arange(len(texts)), [len(ts) for ts in each])
        toks = self.token.findall(joined)
        ids = np.fromiter(map(self._ids.get, toks, repeat(-1)), dtype=np.int64, count=len(toks))
        sep = ids == self._sep_id
        return ids[~sep], np.cumsum(sep)[~sep]

    def _mixed_ids(self, texts: list[str], plain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ASCII texts' tokens, then the others' (each text's tokens stay together and in order)."""
        a, b = np.flatnonzero(plain), np.flatnonzero(~plain)
        ids_a, unit_a = self._ascii_ids([texts[i] for i in a])
        ids_b, unit_b = self._ids_of([texts[i] for i in b])
        return np.concatenate([ids_a, ids_b]), np.concatenate([a[unit_a], b[unit_b]])

    def _ascii_ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """`_ids_of` for ASCII texts in Arrow's C++ kernels: the token pattern's matches are the runs of word
        characters and apostrophes, less the apostrophes at either end (a run of apostrophes alone is none)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = pa.array([t.encode("ascii").translate(_TOKEN_BYTES).decode("ascii") for t in texts], pa.large_string())
        runs = pc.ascii_split_whitespace(arr)
        unit = np.repeat(np.arange(len(texts), dtype=np.int64), np.diff(runs.offsets.to_numpy()))
        toks = pc.utf8_trim(runs.flatten(), "'")
        real = pc.binary_length(toks).to_numpy() > 0  # (split leaves "" at the ends of a text)
        at = pc.index_in(toks.filter(real), value_set=self._words).fill_null(-1).to_numpy().astype(np.int64)
        return np.where(at >= 0, self._word_ids[at], -1), unit[real]


_TOKEN_BYTES = bytes((c + 32 if 65 <= c <= 90 else c) if chr(c).isalnum() or chr(c) in "_'" else 32
                     for c in range(128)) + b" " * 128
"""ASCII bytes lower-cased, those of no token (neither a word character nor an apostrophe) made spaces."""


def model(path: str | Path = TRAIN) -> Model:
    data = Path(path).read_bytes()
    return _model(str(path), hashlib.sha256(data).hexdigest())


@lru_cache(maxsize=2)
def _model(path: str, digest: str) -> Model:
    return Model(*training_set(path))
