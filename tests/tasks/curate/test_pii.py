"""PII redaction: each type becomes its typed placeholder; the validators (Luhn, IBAN mod 97, IP ranges, SSN
ranges) keep look-alikes; documents are never dropped and per-type counts are added."""
import pandas as pd
import pytest

from tasks.curate.rules.pii import TYPES, PiiConfig, pii_redact, redact


@pytest.mark.parametrize("text, want, kind", [
    ("mail john.doe@example.com now", "mail <EMAIL> now", "email"),
    ("IBAN DE89 3704 0044 0532 0130 00 ok", "IBAN <IBAN> ok", "iban"),
    ("IBAN GB82WEST12345698765432 ok", "IBAN <IBAN> ok", "iban"),
    ("card 4111 1111 1111 1111 x", "card <CREDIT_CARD> x", "credit_card"),
    ("card 5500-0000-0000-0004 x", "card <CREDIT_CARD> x", "credit_card"),
    ("ssn 123-45-6789", "ssn <US_SSN>", "us_ssn"),
    ("ip 192.168.1.20 up", "ip <IPV4> up", "ipv4"),
    ("v6 2001:db8::1 here", "v6 <IPV6> here", "ipv6"),
    ("call +1 415 555 0100 now", "call <PHONE> now", "phone"),
    ("phone: 415 555 0100", "phone: <PHONE>", "phone"),
    ("(617) 542-5942 or", "<PHONE> or", "phone"),
    ("card 3782 822463 10005 x", "card <CREDIT_CARD> x", "credit_card"),
    ("from fe80::7c0:a1b4:692a:3f7d refused", "from <IPV6> refused", "ipv6"),
    ("client=10.76.0.185 status", "client=<IPV4> status", "ipv4"),
    ("at 1600 Pennsylvania Avenue NW", "at <STREET_ADDRESS> NW", "street_address"),
])
def test_each_type_is_redacted_with_its_placeholder(text, want, kind):
    out, counts = redact(text)
    assert out == want
    assert counts == {t: int(t == kind) for t in TYPES}


@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1112 x",  # fails Luhn
    "IBAN GB82WEST12345698765433 x",  # fails mod 97
    "ssn 000-45-6789 and 666-12-3456",  # never-issued SSN areas
    "ip 999.1.1.1 and 256.0.0.1",  # not addresses
    "no personal data in this sentence at all",
    # technical text (Debian changelogs, man pages): versions, OIDs, dates, hashes, ids, timestamps, prefixes
    "adwaita-icon-theme (3.16.2.1-2) unstable; urgency=medium",
    "Bumped Standards-Version to 4.6.2.0.",
    "binutils (2.14.90.0.7-8) unstable and libX11 1.4.99.1 and zlib >= 1.2.2.3",
    "Version 4.12.7.3 released on 2023-01-15 fixes CVE-2021-44228 and CWE-79.",
    "OID 1.3.6.1.4.1.311.21.7 and kernel 10.0.19041.1",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "llvm-toolchain-12 (1:12.0.0~++20210127035054+8e464dd76) unstable",
    "timestamp 1637106137000000",
    "Copyright 2013, 2014, 2015, 2018, 2019 2020 2021 g10 Code GmbH",
    "as defined in Clause 252.227-7013 (c) (1)",
    "IGNORED: failed tests: 571 612 1056",
    "Total Instr Fetch Cost: 1.658.683.750   895.069.820",
    "ULA prefix fd20::/20 and git fetch fd::17 master and std::vector",
    "bind to 0.0.0.0 or 127.0.0.1, netmask 255.255.255.0",
    "Copyright (c) 2021 Iain Lane",
])
def test_validators_keep_look_alikes(text):
    out, counts = redact(text)
    assert out == text and sum(counts.values()) == 0


def test_the_rule_never_drops_and_adds_count_columns():
    df = pd.DataFrame({"text": ["a@b.org and c@d.org", "clean"]})
    res = pii_redact(df, PiiConfig())
    assert res.keep.all() and list(res.frame["text"]) == ["<EMAIL> and <EMAIL>", "clean"]
    assert list(res.signals["pii_email"]) == [2, 0] and set(res.signals) == {f"pii_{t}" for t in TYPES}
