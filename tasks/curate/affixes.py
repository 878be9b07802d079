"""spaCy's tokenizer algorithm for one whitespace-free chunk, in Python, over the tokenizer's own rules (special
cases, prefix/suffix/infix patterns, token and URL matchers): the tokens `[t.text for t in tokenizer(chunk)]`,
without building a Doc, lexemes or Token objects (none of which it keeps: spaCy's vocabulary and cache grow with
every new string they see).

The steps are spaCy 3's `Tokenizer._split_affixes` and `_attach_tokens` (spacy/tokenizer.pyx), line for line. Three
searches are narrowed, with the same result, from the patterns' structure (read once with Python's own regex
parser):
- every prefix alternative starts with `^`, so the prefix search tries position 0 only (`match`);
- every suffix alternative ends with `$`: only those that can end with the string's last character are tried, and
  a bounded one (at most W characters) only from W before the end (lookbehinds still see the whole string);
- an infix match can start only at a character of a known set, and there only the alternatives that can start
  with it (in their order) are tried.
URL matching is skipped for a string lacking a character every URL match contains ("."). When the reading meets a
construct it does not know, that search runs whole. Then spaCy's `_apply_special_cases`: affix-bearing special
cases whose plain tokens appear in the chunk are put back.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from tasks.curate.regex_reading import (P, UNBOUNDED, class_of, edge_sets, groups, pattern_of, screened,
                                         top_level_alternatives)


@dataclass(frozen=True)
class TokenizerRules:
    """A spaCy tokenizer's rules as plain data: special cases (string -> token texts) and the patterns (source,
    flags) behind its prefix and suffix searches, infix `finditer` and token and URL matchers; with the
    sentence-final marks of spaCy's rule-based sentencizer (datatrove's sentence splitter)."""
    specials: dict[str, list[str]]
    prefix: tuple[str, int] | None
    suffix: tuple[str, int] | None
    infix: tuple[str, int] | None
    token_match: tuple[str, int] | None
    url_match: tuple[str, int] | None
    sentence_ends: tuple[str, ...] = ()

    @classmethod
    def from_spacy(cls, tokenizer, sentence_ends: tuple[str, ...] = ()) -> "TokenizerRules":
        from spacy.attrs import ORTH

        def pattern(fn, method: str) -> tuple[str, int] | None:
            if fn is None:
                return None
            pat = getattr(fn, "__self__", None)
            if not isinstance(pat, re.Pattern) or getattr(fn, "__name__", "") != method:
                raise ValueError(f"the tokenizer's {method} is not a compiled pattern's: {fn!r}")
            return pat.pattern, pat.flags
        specials = {s: [d.get(ORTH, d.get("ORTH")) for d in subs] for s, subs in (tokenizer.rules or {}).items()}
        return cls({s: t if "".join(t) == s else [s] for s, t in specials.items()},
                   pattern(tokenizer.prefix_search, "search"), pattern(tokenizer.suffix_search, "search"),
                   pattern(tokenizer.infix_finditer, "finditer"), pattern(tokenizer.token_match, "match"),
                   pattern(tokenizer.url_match, "match"), tuple(sentence_ends))

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "TokenizerRules":
        d = json.loads(text)
        return cls({str(k): [str(t) for t in v] for k, v in d["specials"].items()},
                   *(tuple(d[k]) if d[k] is not None else None
                     for k in ("prefix", "suffix", "infix", "token_match", "url_match")),
                   tuple(str(c) for c in d["sentence_ends"]))


def _bound(rule: tuple[str, int] | None, method: str):
    return getattr(re.compile(rule[0], rule[1]), method) if rule is not None else None


def _narrowed(build, fn, plain):
    """The narrowed search `build(fn)`, or the plain one when the patterns cannot be regrouped (the pieces of an
    alternation sharing a group name, say)."""
    try:
        return build(fn)
    except (re.error, ValueError, TypeError, OverflowError, RecursionError):
        return plain


class Affixes:
    """Tokens of one chunk as spaCy's `Tokenizer` with these rules makes them (spaCy 3.x)."""

    def __init__(self, rules: TokenizerRules) -> None:
        self.specials = dict(rules.specials)
        self.token_match = screened(_bound(rules.token_match, "match"))
        self.url_match = screened(_bound(rules.url_match, "match"))
        search, finditer = _bound(rules.prefix, "search"), _bound(rules.infix, "finditer")
        self._prefix = _narrowed(self._prefix_finder, search, self._plain(search))
        search = _bound(rules.suffix, "search")
        self._suffix = _narrowed(self._suffix_finder, search, self._plain(search))
        self._infix = _narrowed(self._infix_finder, finditer,
                                (lambda s: list(finditer(s))) if finditer is not None else (lambda s: []))
        self._patterns: dict[str, list[tuple[str, ...]]] = {}
        for s in self.specials:
            pieces = s.split(" ")
            if any(not p or any(c.isspace() for c in p) for p in pieces):
                continue  # spaCy's pattern holds a whitespace token, never found inside a chunk
            if self._prefix(s) or self._suffix(s) or self._infix(s) or len(pieces) > 1:
                # the tokens spaCy's matcher looks for (the pieces' tokens, one space apart)
                toks = tuple(t for piece in pieces for t in self.tokens(piece, with_specials=False))
                if toks and not (len(toks) == 1 and self.specials[s] == [toks[0]]):  # a span of one token put
                    # back as itself changes nothing, and being shortest it never blocks another span
                    self._patterns.setdefault(toks[0], []).append(toks)
        self._firsts = {p[:2] for ps in self._patterns.values() for p in ps}
        """What a chunk's tokens must contain for a span to match: a one-token pattern, or two patterns' first
        tokens in a row."""
        self._shortest = min((len(p) for ps in self._patterns.values() for p in ps), default=0)

    @staticmethod
    def _pieces(search) -> tuple[re.Pattern | None, list[str] | None]:
        pat = pattern_of(search)
        if pat is None or getattr(search, "__name__", "") != "search":
            return None, None
        return pat, top_level_alternatives(pat.pattern)

    @staticmethod
    def _plain(search):
        return (lambda s: 0) if search is None else (lambda s: (m.end() - m.start() if (m := search(s)) else 0))

    def _prefix_finder(self, search):
        pat, pieces = self._pieces(search)
        if pat is None or not pieces or not all(p.startswith("^") for p in pieces):
            return self._plain(search)
        match, firsts = pat.match, edge_sets(pieces, pat.flags & ~re.UNICODE, last=False)
        if firsts is None:
            return lambda s: (m.end() if (m := match(s)) else 0)
        first = frozenset().union(*firsts)
        return lambda s: (m.end() if (s[:1] in first and (m := match(s))) else 0)

    def _suffix_finder(self, search):
        """Suffix search by the string's last character, over only the alternatives that can end with it (all end
        with `$`: every match ends at the string's end, so the leftmost start wins whatever the order, and a
        bounded alternative of at most W characters is searched from W before the end). Alternatives are
        compiled in groups (those sharing a possible last character), once."""
        pat, pieces = self._pieces(search)
        if pat is None or not pieces or not all(p.endswith("$") and not p.endswith("\\$") for p in pieces):
            return self._plain(search)
        flags = pat.flags & ~re.UNICODE
        ends = edge_sets(pieces, flags, last=True)
        if ends is None:
            return self._plain(search)
        by_char: dict[str, list] = {}
        for group in groups(ends):
            widths = {i: P.parse(pieces[i], flags).getwidth()[1] for i in group}
            bounded = [i for i in group if widths[i] < UNBOUNDED]
            unbounded = [i for i in group if widths[i] >= UNBOUNDED]
            finders = ([(re.compile("|".join(pieces[i] for i in bounded), flags).search,
                         max(widths[i] for i in bounded))] if bounded else []) + \
                      ([(re.compile("|".join(pieces[i] for i in unbounded), flags).search, 0)] if unbounded else [])
            for i in group:
                for c in ends[i]:
                    by_char[c] = finders

        def find(s: str) -> int:
            n = len(s)
            start = n
            for fn, w in by_char.get(s[-1:], ()):
                if m := fn(s, n - w if w and n > w else 0):
                    start = min(start, m.start())
            return n - start
        return find

    def _infix_finder(self, finditer):
        """The infix matches, found from the string's trigger characters (those an alternative's match can start
        with): at each one, left to right and after the last match, the alternatives that can start there, in
        their order. Only they can match at that position, so each position's first matching alternative, and so
        every match, is what one scan of the whole pattern finds."""
        if finditer is None:
            return lambda s: []
        pat = pattern_of(finditer)
        pieces = top_level_alternatives(pat.pattern) if pat is not None and finditer.__name__ == "finditer" else None
        flags = pat.flags & ~re.UNICODE if pat is not None else 0
        starts = edge_sets(pieces, flags, last=False) if pieces else None
        if starts is None:
            return lambda s: list(finditer(s))
        by_char: dict[str, object] = {}
        for group in groups(starts):
            match = re.compile("|".join(pieces[i] for i in sorted(group)), flags).match
            for i in group:
                for c in starts[i]:
                    by_char[c] = match
        triggers = frozenset(by_char)
        next_trigger = class_of(triggers).search

        def find(s: str) -> list:
            if triggers.isdisjoint(s):
                return []
            out, pos = [], 0
            while t := next_trigger(s, pos):
                p = t.start()
                if m := by_char[s[p]](s, p):
                    out.append(m)
                    pos = m.end()
                else:
                    pos = p + 1
            return out
        return find

    def tokens(self, chunk: str, with_specials: bool = True) -> list[str]:
        """spaCy's `_split_affixes` then `_attach_tokens` (the chunk as a whole first checked as a special case)."""
        specials = self.specials if with_specials else {}
        if chunk in specials:
            return list(specials[chunk])
        find_prefix, find_suffix, token_match = self._prefix, self._suffix, self.token_match
        prefixes: list[str] = []
        suffixes: list[str] = []
        string, last_size = chunk, 0
        while string and len(string) != last_size:
            if token_match and token_match(string):
                break
            if string in specials:
                break
            last_size = len(string)
            pre_len = find_prefix(string)
            if pre_len:
                prefix, minus_pre = string[:pre_len], string[pre_len:]
                if minus_pre and minus_pre in specials:
                    string = minus_pre
                    prefixes.append(prefix)
                    break
            suf_len = find_suffix(string[pre_len:] if pre_len else string)
            if suf_len:
                suffix, minus_suf = string[-suf_len:], string[:-suf_len]
                if minus_suf and minus_suf in specials:
                    string = minus_suf
                    suffixes.append(suffix)
                    break
            if pre_len and suf_len and (pre_len + suf_len) <= len(string):
                string = string[pre_len:-suf_len]
                prefixes.append(prefix)
                suffixes.append(suffix)
            elif pre_len:
                string = minus_pre
                prefixes.append(prefix)
            elif suf_len:
                string = minus_suf
                suffixes.append(suffix)
        out = prefixes
        if string:
            if string in specials:
                out.extend(specials[string])
            elif (token_match and token_match(string)) or (self.url_match and self.url_match(string)):
                out.append(string)
            else:
                start = 0
                for m in self._infix(string):
                    a, b = m.start(), m.end()
                    if a == 0:
                        continue
                    if a != start:
                        out.append(string[start:a])
                    if a != b:
                        out.append(string[a:b])
                    start = b
                if start:
                    if string[start:]:
                        out.append(string[start:])
                else:
                    out.append(string)
        if suffixes:
            out.extend(reversed(suffixes))
        return out

    def respecial(self, toks: list[str]) -> list[str]:
        """spaCy's `_apply_special_cases` within the chunk: where the tokens spell an affix-bearing special case as
        its plain tokenization, put the special case's tokens (spans longest first, then leftmost; a span touching
        a taken one is dropped)."""
        pats = self._patterns
        firsts = self._firsts
        if len(toks) < self._shortest or pats.keys().isdisjoint(toks) or (
                firsts.isdisjoint(zip(toks, toks[1:])) and firsts.isdisjoint((t,) for t in toks)):
            return toks
        spans = [(i, i + len(p)) for i, t in enumerate(toks) if t in pats
                 for p in pats[t] if tuple(toks[i:i + len(p)]) == p]
        if not spans:
            return toks
        spans.sort(key=lambda s: (s[1] - s[0], -s[0]))
        seen: set[int] = set()
        keep = []
        for a, b in reversed(spans):
            if a not in seen and b - 1 not in seen:
                keep.append((a, b))
            seen.update(range(a, b))
        out, at = [], 0
        for a, b in sorted(keep):
            out.extend(toks[at:a])
            out.extend(self.specials.get("".join(toks[a:b]), toks[a:b]))
            at = b
        out.extend(toks[at:])
        return out

    def __call__(self, chunk: str) -> list[str]:
        toks = self.tokens(chunk)
        return self.respecial(toks) if self._patterns else toks
