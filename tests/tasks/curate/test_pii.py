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
])
def test_validators_keep_look_alikes(text):
    out, counts = redact(text)
    assert out == text and sum(counts.values()) == 0


def test_the_rule_never_drops_and_adds_count_columns():
    df = pd.DataFrame({"text": ["a@b.org and c@d.org", "clean"]})
    res = pii_redact(df, PiiConfig())
    assert res.keep.all() and list(res.frame["text"]) == ["<EMAIL> and <EMAIL>", "clean"]
    assert list(res.signals["pii_email"]) == [2, 0] and set(res.signals) == {f"pii_{t}" for t in TYPES}
