"""What a compiled regular expression's structure says about its matches, read with Python's own regex parser:
its top-level alternatives as source text, the characters a match can start or end with, the characters every
match contains. Used to narrow searches without changing what they find (tasks/curate/affixes.py)."""
from __future__ import annotations

import re

try:
    from re import _constants as C
    from re import _parser as P
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants as C  # type: ignore[no-redef]
    import sre_parse as P  # type: ignore[no-redef]

UNBOUNDED = 1000


def top_level_alternatives(pattern: str) -> list[str] | None:
    """The pattern's top-level alternatives as source text, or None when it does not split cleanly."""
    parts, depth, start, i, in_class = [], 0, 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            if pattern[i + 1:i + 2] == "^":
                i += 1
            if pattern[i + 1:i + 2] == "]":
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    if depth != 0 or in_class or "|".join(parts) != pattern:
        return None
    try:
        for p in parts:
            re.compile(p)
    except re.error:
        return None
    return parts


def _ranges(op, av) -> list[tuple[int, int]] | None:
    """Characters one consuming item can match, as code point ranges; None when not known."""
    if op is C.LITERAL:
        return [(av, av)]
    if op is C.IN:
        out = []
        for o, a in av:
            if o is C.LITERAL:
                out.append((a, a))
            elif o is C.RANGE:
                out.append(a)
            else:
                return None
        return out
    return None


_ZERO_WIDTH = (C.AT, C.ASSERT, C.ASSERT_NOT)


def edge_chars(items: list, last: bool = False) -> list[tuple[int, int]] | None:
    """Characters the first (or last) consumed character of a match of `items` can be; None when not known."""
    seq = list(reversed(items)) if last else list(items)
    for op, av in seq:
        if op in _ZERO_WIDTH:
            continue
        got = _ranges(op, av)
        if got is not None:
            return got
        if op is C.SUBPATTERN:
            sub = av[-1]
            return edge_chars(list(sub), last) if sub.getwidth()[0] > 0 and not av[1] & re.IGNORECASE else None
        if op is C.BRANCH:
            out: list[tuple[int, int]] = []
            for alt in av[1]:
                got = edge_chars(list(alt), last) if alt.getwidth()[0] > 0 else None
                if got is None:
                    return None
                out.extend(got)
            return out
        if op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, _, item = av
            return edge_chars(list(item), last) if lo > 0 and item.getwidth()[0] > 0 else None
        return None
    return None


def _chars(ranges: list[tuple[int, int]]) -> frozenset[str] | None:
    """The characters of code point ranges (None past 500k of them: treated as not known)."""
    if sum(b - a + 1 for a, b in ranges) > 500_000:
        return None
    return frozenset(chr(c) for a, b in ranges for c in range(a, b + 1))


def class_of(chars: frozenset[str]) -> re.Pattern:
    """A character class matching `chars`, written as ranges."""
    points, ranges = sorted(map(ord, chars)), []
    for c in points:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return re.compile("[" + "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                                     for a, b in ranges) + "]")


def edge_sets(pieces: list[str], flags: int, last: bool) -> list[frozenset[str]] | None:
    """Per alternative, the characters its matches can start (or end) with; None when one is not known, matches
    nothing, or can be empty."""
    out = []
    for p in pieces:
        parsed = P.parse(p, flags)
        got = edge_chars(list(parsed), last) if parsed.getwidth()[0] > 0 else None
        chars = _chars(got) if got else None
        if chars is None:
            return None
        out.append(chars)
    return out


def groups(sets: list[frozenset[str]]) -> list[list[int]]:
    """Indices of the sets, grouped so that sets sharing a character are in one group (each group in order)."""
    parent = list(range(len(sets)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    owner: dict[str, int] = {}
    for i, chars in enumerate(sets):
        for c in chars:
            j = owner.setdefault(c, i)
            if j != i:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(sets)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def required_chars(items: list) -> set[str]:
    """Characters every match of `items` contains (a subset: unknown constructs require nothing)."""
    need: set[str] = set()
    for op, av in items:
        if op is C.LITERAL:
            need.add(chr(av))
        elif op is C.IN and len(av) == 1 and av[0][0] is C.LITERAL:
            need.add(chr(av[0][1]))
        elif op is C.SUBPATTERN and not av[1] & re.IGNORECASE:
            need |= required_chars(list(av[-1]))
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT) and av[0] > 0:
            need |= required_chars(list(av[2]))
        elif op is C.BRANCH:
            alts = [required_chars(list(alt)) for alt in av[1]]
            need |= set.intersection(*alts) if alts else set()
    return need


def pattern_of(fn) -> re.Pattern | None:
    """The compiled pattern behind a bound `search`/`match`/`finditer` (None for other callables, and for
    patterns whose flags the structure reading does not follow)."""
    pat = getattr(fn, "__self__", None)
    return pat if isinstance(pat, re.Pattern) and not pat.flags & (re.VERBOSE | re.IGNORECASE) else None


def screened(fn):
    """`fn` (a pattern's match/search), skipped for strings lacking a character every match needs."""
    if fn is None:
        return None
    pat = pattern_of(fn)
    need = "".join(sorted(required_chars(list(P.parse(pat.pattern, pat.flags & ~re.UNICODE))))) if pat else ""
    if not need:
        return fn
    if len(need) == 1:
        return lambda s: need in s and fn(s)
    return lambda s: all(c in s for c in need) and fn(s)
