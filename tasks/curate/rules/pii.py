"""Rule `pii`: PII redaction with typed placeholders and per-type counts (regex; credit cards Luhn-checked, IBANs
mod-97-checked, IP addresses validated). Never drops a document."""
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
    ("ipv6", re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{1,4}(?![\w:])|(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4})?(?![\w:])")),
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


def _valid(kind: str, s: str) -> bool:
    if kind == "credit_card":
        digits = re.sub(r"\D", "", s)
        return 13 <= len(digits) <= 19 and _luhn(digits)
    if kind == "iban":
        return _iban_ok(s)
    if kind in ("ipv4", "ipv6"):
        try:
            ipaddress.ip_address(s)
        except ValueError:
            return False
        return True
    return True


def redact(text: str) -> tuple[str, dict[str, int]]:
    """Typed placeholders for every PII match; invisible characters that could split one are removed first."""
    counts = dict.fromkeys(TYPES, 0)
    text = strip_invisible(text)
    for kind, pat in PATTERNS:
        def sub(m, kind=kind):
            if not _valid(kind, m.group(0)):
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
