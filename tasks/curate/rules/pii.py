"""Rule `pii`: PII redaction with typed placeholders and per-type counts. Never drops a document.

Patterns find candidates; checks keep technical text intact (measured by benchmarks/pii_precision.py on Debian
changelogs, copyright files and man pages, and a labelled set for recall):
- credit cards: a card network's number prefix and length, and the Luhn checksum (a 13-19 digit timestamp or count
  passes Luhn one time in ten);
- IBANs: the mod-97 checksum;
- IPv4: a valid address that is not part of a longer dotted chain (OIDs, 5-part versions), not glued to version
  syntax (`(3.16.2.1-2)`, `v1.2.3.4`, `foo-1.2.3.4`, `1.2.3.4~rc1`), not after a version word or operator
  (`version 4.3.0.1`, `>= 1.2.2.3`), not shaped like a version (first part < 10 and second < 100: `1.8.1.2`), and not
  a non-personal address (the unspecified and loopback ranges, netmasks, multicast);
- IPv6: a valid address with at least three groups, not a prefix (`fd20::/20`), not loopback;
- phones: not a run of years (`2019 2020 2021`), not digit grouping (`1.658.683.750`), not mixed separators (clause
  numbers such as `252.227-7013`), and numbers separated only by spaces need a cue (`call`, `phone`, `fax`, ...)
  or a leading `+` / `(`;
- street addresses: a house number that is a year in a copyright line (`2021 Iain Lane`) is not one.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.curate.step import StepResult
from tasks.curate.text import strip_invisible

PATTERNS: list[tuple[str, re.Pattern]] = [
    # local part at most 64 characters and only where a run of its characters begins; domain at most 255: linear
    ("email", re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,255}\.[A-Za-z]{2,63}\b")),
    ("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")),
    ("credit_card", re.compile(r"\b(?:\d[ -]?){12,18}\d\b")),
    ("us_ssn", re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")),
    # candidates with "::" anywhere; ipaddress decides (bounded repetition: linear)
    ("ipv6", re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")),
    ("ipv4", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")),
    ("phone", re.compile(r"(?<![\w+])(?<!\d )(?<!\d-)(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}\b(?![ .-]?\d)")),
    ("street_address", re.compile(r"\b\d{1,5} (?:[A-Z][a-z]{1,30} ){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct)\b\.?")),
]
TYPES = [name for name, _ in PATTERNS]


@dataclass(frozen=True)
class PiiConfig:
    """No settings yet: every type in PATTERNS is redacted."""


def _luhn(digits: str) -> bool:
    total, alt = 0, False
    for ch in reversed(digits):
        d = int(ch)
        if alt:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        alt = not alt
    return total % 10 == 0


def _iban_ok(s: str) -> bool:
    s = s.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


# card networks: number prefixes and lengths (ISO/IEC 7812 issuer identification numbers)
_CARD = re.compile(r"^(?:4\d{12}(?:\d{3}){0,2}|5[1-5]\d{14}|2(?:2[2-9][1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)\d{12}"
                   r"|3[47]\d{13}|3(?:0[0-5]|[68]\d)\d{11,16}|6(?:011|5\d\d|4[4-9]\d)\d{12,15}|35(?:2[89]|[3-8]\d)\d{12,15}"
                   r"|62\d{14,17})$")
_VERSION_WORD = re.compile(r"(?:version|versions|release[sd]?|update[sd]?|upgrade[sd]?|bump(?:ed|s)?|kernel|firmware"
                           r"|build|ver\.?|rev\.?|revision|\bv)(?:\s+(?:to|from|is|of))?\s*[:=]?\s*$", re.I)
_NOT_PERSONAL_V4 = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", (0, 8), "255.0.0.0/8", "224.0.0.0/4")]
_NOT_PERSONAL_V6 = [ipaddress.ip_network(n) for n in ("::1/128", "::/128")]
_PHONE_CUE = re.compile(r"(?:phone|tel|telephone|call|fax|mobile|cell|contact|reach|dial|number|whatsapp|sms|text)"
                        r"\b[^\n\d]{0,16}$", re.I)
_COPYRIGHT = re.compile(r"copyright|\(c\)|©", re.I)


def _line(text: str, start: int, end: int) -> str:
    return text[text.rfind("\n", 0, start) + 1:(text.find("\n", end) + 1 or len(text) + 1) - 1]


def _valid(kind: str, s: str, text: str = "", start: int = 0, end: int = 0) -> bool:
    """Whether a candidate match is that kind of PII (`text[start:end] == s`, for the checks that read context)."""
    before, after = text[max(0, start - 32):start], text[end:end + 3]
    if kind == "credit_card":
        digits = re.sub(r"\D", "", s)
        return bool(_CARD.match(digits)) and _luhn(digits)
    if kind == "iban":
        return _iban_ok(s)
    if kind == "ipv4":
        try:
            ip = ipaddress.ip_address(s)
        except ValueError:
            return False
        if re.search(r"[\w.~+-]$", before) or re.match(r"\.\d|[-~+]\w|[A-Za-z]", after):
            return False  # part of a dotted chain or of version syntax
        if _VERSION_WORD.search(before.rstrip("( ")) or re.search(r"(?:[<>]=?|==|~=|\^)\s*$", before):
            return False  # `version 4.3.0.1`, `zlib >= 1.2.2.3`
        first, second = (int(x) for x in s.split(".")[:2])
        if first < 10 and second < 100:
            return False  # `libX11 1.4.99.1`, `doxygen 1.8.1.2`: versions (and placeholders such as 1.2.3.4)
        return not any(ip in net for net in _NOT_PERSONAL_V4)
    if kind == "ipv6":
        try:
            ip = ipaddress.ip_address(s)
        except ValueError:
            return False
        if s.count(":") < 2 or len([g for g in s.split(":") if g]) < 3 or after.startswith("/"):
            return False  # `fd::17`, `a::b`, a prefix such as fd20::/20
        return not any(ip in net for net in _NOT_PERSONAL_V6)
    if kind == "phone":
        groups = re.findall(r"\d+", s)
        marked = s.lstrip().startswith(("(", "+"))
        if all(len(g) == 4 and 1900 <= int(g) <= 2099 for g in groups):
            return False  # a run of years
        if re.search(r"\d[.,]$", before) or (len(groups[-1]) < 4 and not marked):
            return False  # digit grouping of a larger number (1.658.683.750)
        seps = set(re.findall(r"\d([ .-])\d", s))
        if seps == {" "} and not marked and not _PHONE_CUE.search(before):
            return False  # numbers separated by spaces (`failed tests: 571 612 1056`) need a cue to be a phone
        return len(seps) <= 1 or marked
    if kind == "street_address":
        number = int(re.match(r"\d+", s).group(0))
        return not (1900 <= number <= 2099 and _COPYRIGHT.search(_line(text, start, end)))
    return True


def redact(text: str) -> tuple[str, dict[str, int]]:
    """Typed placeholders for every PII match; invisible characters that could split one are removed first."""
    counts = dict.fromkeys(TYPES, 0)
    text = strip_invisible(text)
    for kind, pat in PATTERNS:
        def sub(m, kind=kind):
            if not _valid(kind, m.group(0), m.string, m.start(), m.end()):
                return m.group(0)
            counts[kind] += 1
            return f"<{kind.upper()}>"
        text = pat.sub(sub, text)
    return text, counts


def pii_redact(df: pd.DataFrame, cfg: PiiConfig) -> StepResult:
    """Replace PII with <TYPE> placeholders; never drops a document; adds pii_<type> count columns."""
    out = [redact(t) for t in df["text"]]
    signals = {f"pii_{k}": np.array([c[k] for _, c in out], dtype=np.int32) for k in TYPES}
    return StepResult(df.assign(text=[t for t, _ in out]), np.ones(len(df), dtype=bool),
                      np.array([None] * len(df), dtype=object), signals)
