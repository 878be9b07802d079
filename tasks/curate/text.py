"""Text primitives shared by the curation rules: normalisation, word splitting (spaCy's English rules, as
datatrove's filters see words), duplicate counting. Pure functions over strings."""
from __future__ import annotations

import re
import string
import unicodedata

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
    r"|(?<![\w.-])(?:[\w-]{1,63}\.)++[a-z]{2,63}/[^\s()\[\]<>\"']*(?<![.,;:!?])"  # host/path, no scheme (linear:
    # starts only where a run begins, labels of at most 63 characters, no backtracking into the label list)
    r"|\w+[,.;:!?']*-{2,}(?=\s|$)"     # "lord,--" at the end of a chunk: spaCy splits nothing
    r"|(?:[A-Za-z]\.)+(?![A-Za-z])"     # abbreviations and initials: e.g. A.B. I.
    r"|\w*\d(?:[.,:]\d+)+"             # numbers and dotted ids: 3.5 1,000 10:30 T1016.002
    r"|(?<![\w\[])[\w\[]*\\[\w\\\[]*"     # backslashes split nothing: "\[Aside" C\dir\file (from a run's start)
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
