"""Text primitives shared by the curation rules: normalisation, word splitting (spaCy's English tokenizer, as
datatrove's filters see words, chunk by chunk), duplicate counting. Pure functions over strings."""
from __future__ import annotations

import importlib.metadata
import os
import re
import string
import unicodedata
from functools import lru_cache
from itertools import chain
from pathlib import Path

PUNCTUATION = frozenset(string.punctuation + "‘’“”«»…–—¡¿·")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Invisible characters that split words without showing: soft hyphen, zero-width space/joiners, directional marks
# and bidi embeddings/isolates, word joiner and invisible operators, byte-order mark, variation selectors, tag
# characters (used to hide text). Removed before anything matches words, emails or blocklists.
INVISIBLE = re.compile("[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
                       "\ufe00-\ufe0f\U000e0000-\U000e007f]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")
_BLANKS = re.compile(r"\n{3,}")


def strip_invisible(text: str) -> str:
    return INVISIBLE.sub("", text)


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = strip_invisible(_CONTROL.sub("", text))
    lines = [_SPACES.sub(" ", ln).strip() for ln in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


_SPACY_MAX_CHARS = 1000
"""Chunks longer than this (encoded blobs, minified code, junk; words, URLs and Markdown links are far shorter) are
split by `_ROUGH` instead, in linear time; a token there rarely changes a verdict. spaCy's affix loop strips one
affix at a time and searches the rest again, quadratic in a chunk of marks (24k "(" take 40 s in spaCy itself); the
chunk tokenizer narrows its searches (1,000 "(" take about 1 ms, spaCy 77 ms), and this limit bounds the worst
case."""
_ROUGH = re.compile(r"(?:https?://|www\.)\S+|\w+|[^\w\s]")
_CACHE_MAX = 1 << 18
"""Chunks keep their tokens in a per-process cache (chunks repeat: words, "(closes:", "--", "x)"), emptied when
full (about 45 MB then)."""


def _import_spacy():
    """spaCy, imported without torch when torch is not loaded yet: only its tokenizer rules are used here, while
    thinc (imported by spaCy) would load torch if it can, a second per process (a Dask worker, each partition's
    child inherits it) for nothing. thinc then runs without its torch support in that process; an `import torch`
    later still works."""
    import sys

    if "torch" in sys.modules or "spacy" in sys.modules:
        import spacy

        return spacy
    sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` raises ImportError: thinc goes without
    try:
        import spacy
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return spacy


def _rules_file() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "keel" / f"spacy-{importlib.metadata.version('spacy')}-en-rules.json"


def tokenizer_rules():
    """spaCy's English tokenizer rules (`spacy.blank("en")`, no model) and its sentencizer's sentence-final marks,
    as data. Read from spaCy once per spaCy version and kept as JSON in the user's cache (~/.cache/keel): a process
    that has them there does not import spaCy (0.6 s; and when spaCy is first needed inside a rule, in every
    partition's child). An unreadable file is read from spaCy again and rewritten."""
    from tasks.curate.affixes import TokenizerRules

    path = _rules_file()
    try:
        return TokenizerRules.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    spacy = _import_spacy()
    from spacy.pipeline.sentencizer import Sentencizer

    rules = TokenizerRules.from_spacy(spacy.blank("en").tokenizer, tuple(Sentencizer.default_punct_chars))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(rules.to_json(), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: read from spaCy each time
    return rules


@lru_cache(maxsize=1)
def _rules():
    return tokenizer_rules()


@lru_cache(maxsize=1)
def _spacy():
    """spaCy's English tokenizer run chunk by chunk (tasks/curate/affixes.py), and the special cases made of
    letters only (chunks such as "cannot" that spaCy splits)."""
    from tasks.curate.affixes import Affixes

    chunk_tokens = Affixes(_rules())
    return chunk_tokens, frozenset(s for s in chunk_tokens.specials if s.isalpha())


_chunks: dict[str, tuple[str, ...]] = {}
_words: dict[str, list[str]] = {}
_words_held = 0
WORDS_HELD_MAX = 1_000_000
"""Words of recent documents kept for the rules that follow (Gopher quality and repetition and FineWeb all need a
document's words; the curate stage runs its rules over a sub-batch at a time, so they meet the same texts)."""


def doc_words(text: str) -> list[str]:
    """`split_words(text)`, computed once for the rules of a sub-batch (a bounded per-process cache, keyed by the
    text itself: a rule that changed the text looks up the new text)."""
    global _words_held
    got = _words.get(text)
    if got is None:
        got = split_words(text)
        if _words_held + len(got) > WORDS_HELD_MAX:
            _words.clear()
            _words_held = 0
        _words[text] = got
        _words_held += len(got)
    return got


def forget_words() -> None:
    """Empty the caches of `doc_words` and of chunk tokens (benchmarks timing one rule alone, cold)."""
    global _words_held
    _words.clear()
    _chunks.clear()
    _words_held = 0


def split_words(text: str) -> list[str]:
    """The words datatrove's filters see: spaCy's English tokenizer, whitespace tokens dropped. spaCy tokenizes
    each whitespace-separated chunk on its own, so a document's words are its chunks' tokens: a chunk of letters
    that is not one of spaCy's special cases is one word; every other chunk (punctuation, digits, marks, special
    cases) gets spaCy's tokens from its rules (tasks/curate/affixes.py), with a per-process cache; a chunk too long
    for spaCy's affix loop to stay cheap is split by a linear pattern. spaCy also re-joins a few special cases
    across neighbouring chunks (emoticons such as '):' from ')' and ':'), which this does not: a few documents in a
    thousand differ by a token."""
    chunks = text.split()
    try:
        return list(chain.from_iterable(map(_chunks.__getitem__, chunks)))
    except KeyError:
        pass
    chunk_tokens, special = _spacy()
    new = set(chunks).difference(_chunks)
    if len(_chunks) + len(new) > _CACHE_MAX:
        _chunks.clear()
        new = set(chunks)
    plain = set(filter(str.isalpha, new)).difference(special)  # one word each
    _chunks.update(zip(plain, zip(plain)))
    for chunk in new.difference(plain):
        if len(chunk) > _SPACY_MAX_CHARS:
            _chunks[chunk] = tuple(_ROUGH.findall(chunk))
        else:
            _chunks[chunk] = tuple(chunk_tokens(chunk))
    return list(chain.from_iterable(map(_chunks.__getitem__, chunks)))


@lru_cache(maxsize=1)
def _sentence_ends() -> frozenset[str]:
    return frozenset(_rules().sentence_ends)


def _is_punct(word: str) -> bool:
    return all(unicodedata.category(c).startswith("P") for c in word)


def sentence_count(words: list[str]) -> int:
    """Sentences in a run of words as spaCy's rule-based sentencizer (datatrove's sentence splitter) counts them:
    a sentence starts at the first word, and again at the first word after a sentence-final mark that is
    neither such a mark nor punctuation."""
    if not words:
        return 0
    ends, n, seen = _sentence_ends(), 1, False
    for w in words:
        if w in ends:
            seen = True
        elif seen and not _is_punct(w):
            n, seen = n + 1, False
    return n


def duplicates(items: list[str]) -> tuple[int, int]:
    """(items equal to an earlier item, their characters): every item's copies after its first, counted from the
    distinct items (C-level set and sums, no loop over the items)."""
    distinct = set(items)
    return len(items) - len(distinct), sum(map(len, items)) - sum(map(len, distinct))
