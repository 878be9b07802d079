"""HAP (hate, abuse, profanity) scoring: an offline classifier plus a word list, sentence-level max.

Like IBM data-prep-kit's HAP annotator, a document's score is the maximum over its sentences, so one abusive
sentence in a long document is not diluted. The classifier is alt-profanity-check (a linear SVM shipped in the
wheel, ~50k sentences/s); the word list (data_contracts/hap/words.txt) catches what it misses.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[a-z]+")
DEFAULT_WORDS = Path(__file__).resolve().parent.parent / "data_contracts" / "hap" / "words.txt"
MAX_SENTENCES = 2000  # per document; long documents are scored on their first sentences


@lru_cache(maxsize=4)
def word_list(path: str = str(DEFAULT_WORDS)) -> frozenset[str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip().lower() for w in lines if w.strip() and not w.startswith("#"))


def sentences(text: str) -> list[str]:
    return [s for s in (x.strip() for x in _SENTENCE.split(text)) if s][:MAX_SENTENCES] or [""]


def hap_scores(texts: list[str], words_path: str = str(DEFAULT_WORDS), list_score: float = 0.95) -> np.ndarray:
    """Score in [0, 1] per text: max over sentences of the classifier probability, raised by list hits."""
    from profanity_check import predict_prob

    if not texts:
        return np.zeros(0)
    per_doc = [sentences(t) for t in texts]
    flat = [s for doc in per_doc for s in doc]
    probs = predict_prob(flat)
    bounds = np.cumsum([0] + [len(d) for d in per_doc])
    model = np.maximum.reduceat(probs, bounds[:-1])
    words = word_list(words_path)
    listed = np.array([bool(words.intersection(_WORD.findall(t.lower()))) for t in texts])
    return np.where(listed, np.maximum(model, list_score), model)
