"""PII redaction: what it takes out of technical text, and recall per type on a labelled set.

  .venv/bin/python benchmarks/pii_precision.py [--docs 600]

1. Technical corpora built from what this machine ships (Debian changelogs, copyright files, man pages): every
   redaction per type with examples in context. In this text only e-mail addresses of people (maintainers,
   authors) and the occasional real phone number or street address are PII; version strings, OIDs, dates, hashes,
   CVE/CWE ids, years, timestamps, clause numbers and network prefixes are not.
2. A labelled set generated here (a fixed seed): sentences holding PII of every type in many written forms, and
   hard negatives of the shapes above; precision and recall per type.
Last line: one JSON object of figures.
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.curate.rules import pii  # noqa: E402


def technical_corpora(n: int) -> dict[str, list[str]]:
    rng = random.Random(0)
    out = {}
    for name, pattern, opener in [("changelog", "/usr/share/doc/*/changelog*.gz", gzip.open),
                                  ("copyright", "/usr/share/doc/*/copyright", open),
                                  ("man", "/usr/share/man/man*/*.gz", gzip.open)]:
        files = sorted(glob.glob(pattern))
        rng.shuffle(files)
        docs = []
        for f in files[:n]:
            try:
                with opener(f, "rb") as fh:
                    docs.append(fh.read(400_000).decode("utf-8", "replace"))
            except OSError:
                continue
        if docs:
            out[name] = docs
    return out


def redactions(text: str) -> list[tuple[str, str]]:
    """(type, context) of every redaction `pii.redact` makes, in its order."""
    found = []
    text = pii.strip_invisible(text)
    for kind, pat in pii.PATTERNS:
        def sub(m, kind=kind):
            if not pii._valid(kind, m.group(0), m.string, m.start(), m.end()):
                return m.group(0)
            found.append((kind, m.string[max(0, m.start() - 30):m.end() + 12].replace("\n", " ")))
            return f"<{kind.upper()}>"
        text = pat.sub(sub, text)
    return found


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    for d in "0123456789":
        if pii._luhn(body + d):
            return body + d
    raise AssertionError


def _iban(rng: random.Random) -> str:
    country, bban = rng.choice([("DE", 18), ("GB", 18), ("FR", 23), ("NL", 14), ("ES", 20)])
    body = "".join(str(rng.randrange(10)) for _ in range(bban))
    if country in ("GB", "NL"):
        body = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + body[4:]
    num = int("".join(str(int(c, 36)) for c in body + country + "00"))
    iban = f"{country}{98 - num % 97:02d}{body}"
    return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.5 else iban


def labelled(n: int, seed: int = 7) -> list[tuple[str, dict[str, int]]]:
    """Sentences with known PII counts per type (positives) and hard negatives (all zero)."""
    rng = random.Random(seed)
    first = ["Jane", "Ahmed", "Li", "Maria", "Olu", "Sven", "Priya", "Tomás"]
    last = ["Doe", "Okafor", "Zhang", "García", "Nilsson", "Patel", "Kowalski"]
    streets = ["Main", "Oak", "Maple", "Elm", "Cedar Hill", "Sunset", "Lake View"]

    def email():
        u = rng.choice(first).lower().replace("á", "a") + rng.choice([".", "_", ""]) + rng.choice(last).lower().replace("í", "i")
        return u + "@" + rng.choice(["gmail.com", "corp.co.uk", "uni-bonn.de", "mail.acme.io", "posteo.net"])

    def phone():
        a, b, c = rng.randrange(200, 999), rng.randrange(200, 999), rng.randrange(1000, 9999)
        return rng.choice([f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"+1 {a} {b} {c}", f"+44 20 {b}{rng.randrange(0, 9)} {c}",
                           f"+49 30 {b}{rng.randrange(0, 9)} {c}", f"{a} {b} {c}"])

    def card():
        brand = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16),
                            ("3530", 16), ("4", 13)])
        num = _luhn_complete(*brand, rng)
        return " ".join(num[i:i + 4] for i in range(0, len(num), 4)) if rng.random() < 0.4 else num

    def ssn():
        return f"{rng.randrange(100, 665)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}"

    def ipv4():
        return rng.choice([f"{rng.choice([x for x in range(11, 223) if x != 127])}.{rng.randrange(0, 255)}.{rng.randrange(0, 255)}.{rng.randrange(1, 254)}",
                           f"192.168.{rng.randrange(0, 255)}.{rng.randrange(1, 254)}", f"10.{rng.randrange(0, 255)}.{rng.randrange(0, 255)}.{rng.randrange(1, 254)}"])

    def ipv6():
        groups = [f"{rng.randrange(0, 65535):x}" for _ in range(8)]
        return rng.choice([":".join(groups), ":".join(groups[:3]) + "::" + groups[7], "fe80::" + ":".join(groups[4:])])

    def address():
        return f"{rng.randrange(1, 9999)} {rng.choice(streets)} {rng.choice(['Street', 'St', 'Avenue', 'Road', 'Lane', 'Drive', 'Blvd'])}"

    makers = {"email": email, "phone": phone, "credit_card": card, "us_ssn": ssn, "ipv4": ipv4, "ipv6": ipv6,
              "street_address": address, "iban": lambda: _iban(rng)}
    frames = {"email": ["Write to {} for access.", "Contact: {}", "Reported-by: {} <{}>".replace(" <{}>", "")],
              "phone": ["Call me at {} after 5pm.", "Phone: {}", "reach the office on {} anytime"],
              "credit_card": ["Card number {} exp 09/27.", "charged to {} yesterday", "CC: {}"],
              "us_ssn": ["SSN {} on file.", "her social security number is {}"],
              "ipv4": ["Login from {} at 03:12.", "the attacker's host {} scanned port 22", "client={} status=200"],
              "ipv6": ["connection from {} refused", "IPv6 address {} assigned"],
              "street_address": ["She lives at {}, Springfield.", "Ship to {} please."],
              "iban": ["Pay to IBAN {} by Friday.", "account {} (IBAN)"]}
    negatives = [
        "Version 4.12.7.3 released on 2023-01-15 fixes CVE-2021-44228 and CWE-79.",
        "adwaita-icon-theme (3.16.2.1-2) unstable; urgency=medium", "Bumped Standards-Version to 4.6.2.0.",
        "OID 1.3.6.1.4.1.311.21.7 identifies the template.", "binutils (2.14.90.0.7-8) unstable",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "commit 8e464dd76befbc4a",
        "Copyright 2013, 2014, 2015, 2018, 2019 2020 2021 g10 Code GmbH", "as defined in Clause 252.227-7013 (c) (1)",
        "timestamp 1637106137000000 and 20210127035054", "ULA prefix fd20::/20 and 2001:db8::/32", "git fetch fd::17 master",
        "bind to 0.0.0.0 or 127.0.0.1, netmask 255.255.255.0", "Python 3.11.7 and v1.2.3.4",
        "llvm-toolchain-12 (1:12.0.0~++20210127035054+8e464dd76) unstable", "std::vector<int> and Foo::bar",
        "Copyright (c) 2021 Iain Lane and 2019 Jo Smith", "ISBN 978-3-16-148410-0, page 1024 2048 4096", "uptime 12:30:45 load 0.15",
        "MAC 00:1a:2b:3c:4d:5e on eth0", "price 1,234,567.89 USD on 2024/03/15", "kernel 5.10.0.1 and build 10.0.19041.1",
        "order #4532015112830366 of 2019 items",  # a Luhn-valid Visa number: PII
    ]
    out = []
    for _ in range(n):
        kind = rng.choice(list(makers))
        value = makers[kind]()
        out.append((rng.choice(frames[kind]).format(value), {kind: 1}))
    for t in negatives:
        out.append((t, {"credit_card": 1} if "#4532015112830366" in t else {}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=600, help="files per technical corpus")
    ap.add_argument("--labelled", type=int, default=4000)
    args = ap.parse_args()
    figures: dict = {"technical": {}, "labelled": {}}
    for name, docs in technical_corpora(args.docs).items():
        found = [r for d in docs for r in redactions(d)]
        per = collections.Counter(k for k, _ in found)
        mb = sum(len(d) for d in docs) / 1e6
        print(f"\n{name}: {len(docs)} files, {mb:.1f} MB; redactions {dict(per)}")
        for kind in per:
            if kind == "email":
                continue
            examples = collections.Counter(c for k, c in found if k == kind).most_common(8)
            for ctx, count in examples:
                print(f"   {kind:<15} x{count:<4} {ctx!r}")
        figures["technical"][name] = {"files": len(docs), "mb": round(mb, 1), **per}
    tp, fp, fn = collections.Counter(), collections.Counter(), collections.Counter()
    for text, want in labelled(args.labelled):
        _, got = pii.redact(text)
        for kind in pii.TYPES:
            tp[kind] += min(got[kind], want.get(kind, 0))
            fp[kind] += max(got[kind] - want.get(kind, 0), 0)
            fn[kind] += max(want.get(kind, 0) - got[kind], 0)
            if got[kind] != want.get(kind, 0) and len(figures["labelled"].setdefault("_errors", [])) < 15:
                figures["labelled"]["_errors"].append(f"{kind}: want {want.get(kind, 0)} got {got[kind]}: {text[:90]}")
    print("\nlabelled set (generated, seed 7): precision / recall per type")
    for kind in pii.TYPES:
        p = tp[kind] / max(tp[kind] + fp[kind], 1)
        r = tp[kind] / max(tp[kind] + fn[kind], 1)
        figures["labelled"][kind] = {"precision": round(p, 4), "recall": round(r, 4), "n": tp[kind] + fn[kind]}
        print(f"   {kind:<15} precision {p:.3f}  recall {r:.3f}  (n={tp[kind] + fn[kind]})")
    for e in figures["labelled"].pop("_errors", []):
        print("   miss/extra:", e)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
