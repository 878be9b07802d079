"""Text primitives shared by the curation rules: normalisation, word splitting (spaCy's English tokenizer, as
datatrove's filters see words, with a fast path for plain words), duplicate counting. Pure functions over
strings."""
from __future__ import annotations

import re
import string
import unicodedata
from functools import lru_cache

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


_CACHE_MAX = 1 << 18
_SPACY_MAX_CHARS = 1000
"""spaCy's affix loop costs (affixes stripped) x (chunk length): a chunk of 24k "(" takes 40 s. Longer chunks
(encoded blobs, minified code, junk; words, URLs and Markdown links are far shorter) are split by `_ROUGH`
instead, in linear time; a token there rarely changes a verdict. Within the limit a chunk of pure affix marks
costs up to ~0.5 s: a document made of them meets the rule's time budget (`rule_timeout`)."""
_ROUGH = re.compile(r"(?:https?://|www\.)\S+|\w+|[^\w\s]")
_CACHE_MAX = 1 << 18
"""Chunks keep their tokens in a per-process cache (chunks repeat: "(closes:", "--", "x)")."""


@lru_cache(maxsize=1)
def _spacy():
    """spaCy's English tokenizer (rules only, no model: `spacy.blank`) and its special-case strings."""
    import spacy

    tok = spacy.blank("en").tokenizer
    return tok, frozenset(tok.rules or ())


_chunks: dict[str, list[str]] = {}
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
    """Empty the cache of `doc_words` (benchmarks timing one rule alone)."""
    global _words_held
    _words.clear()
    _words_held = 0


def split_words(text: str) -> list[str]:
    """The words datatrove's filters see: spaCy's English tokenizer, whitespace tokens dropped. A chunk of letters
    that is not one of spaCy's special cases is one word, as spaCy makes it; every other whitespace-separated
    chunk (punctuation, digits, marks, special cases) goes to spaCy's own tokenizer, all of a document's unusual
    chunks in one call, with a per-process cache; a chunk too long or too full of marks for spaCy's affix loop to
    stay cheap is split by a linear pattern. spaCy tokenizes each chunk on its own except
    for rare special cases spanning neighbours (emoticons such as '):'), so a few documents in a thousand differ by
    a token."""
    tok, special = _spacy()
    out: list = []
    slow: list[str] = []
    for chunk in text.split():
        if chunk.isalpha() and chunk not in special:
            out.append(chunk)
            continue
        known = _chunks.get(chunk)
        if known is not None:
            out.extend(known)
            continue
        if len(chunk) > _SPACY_MAX_CHARS:
            out.extend(_ROUGH.findall(chunk))
            continue
        out.append(None)
        slow.append(chunk)
    if not slow:
        return out
    groups: list[list[str]] = [[] for _ in slow]
    starts, pos = [], 0
    for chunk in slow:
        starts.append(pos)
        pos += len(chunk) + 1
    j, last = 0, len(starts) - 1
    for t in tok(" ".join(slow)):
        word = t.text.strip()
        if not word:
            continue
        while j < last and t.idx >= starts[j + 1]:
            j += 1
        groups[j].append(word)
    if len(_chunks) < _CACHE_MAX:
        _chunks.update(zip(slow, groups))
    it = iter(groups)
    return [w for x in out for w in ((x,) if x is not None else next(it))]


@lru_cache(maxsize=1)
def _sentence_ends() -> frozenset[str]:
    from spacy.pipeline.sentencizer import Sentencizer

    return frozenset(Sentencizer.default_punct_chars)


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
    seen: set[str] = set()
    n = chars = 0
    for x in items:
        if x in seen:
            n += 1
            chars += len(x)
        else:
            seen.add(x)
    return n, chars
