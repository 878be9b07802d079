"""Document-level legal rule: blocklists, opt-outs, per-document licences, copyright notices."""
from pathlib import Path

import pandas as pd

import dataclasses

from tasks.curate.rules.legal_policy import domain_of, legal_policy
from tasks.govern.forget import add_optout
from tasks.govern.legal import DocumentPolicy, document_policy, load_policy


def _cfg(tmp_path: Path, extra: str = "", optout: Path | None = None) -> DocumentPolicy:
    policy = tmp_path / "policy.toml"
    policy.write_text(f"""
[licenses]
permissive = ["MIT", "CC-BY-4.0"]
non_commercial = ["CC-BY-NC-4.0"]
[use.commercial]
allow = ["permissive"]
[blocklist]
domains = ["bad.example"]
url_patterns = ["/casino/"]
[optout]
domains = ["private.example.org"]
doc_ids = ["d-opted"]
{extra}
""")
    return document_policy(load_policy(policy, optout or tmp_path / "none.toml"), "commercial", ut1=False)


def _run(cfg, rows):
    df = pd.DataFrame(rows, columns=["doc_id", "source_id", "url", "license", "text"])
    res = legal_policy(df, cfg)
    return [None if k else r for k, r in zip(res.keep, res.reasons)], res.signals["copyright_notice"].tolist()


ROWS = [("d1", "s", "https://good.example/a", "MIT", "fine text"),
        ("d2", "s", "https://sub.bad.example/x", "MIT", "blocked by parent domain"),
        ("d3", "s", "https://ok.example/casino/1", "MIT", "blocked by pattern"),
        ("d-opted", "s", None, "MIT", "opted out by id"),
        ("d5", "s", "http://www.private.example.org/p", "MIT", "opted-out domain"),
        ("d6", "s", None, "CC-BY-NC-4.0", "per-document licence not allowed"),
        ("d7", "s", None, "MIT", "Copyright 2021 ACME. All rights reserved.")]


def test_each_rule_rejects_exactly_its_documents(tmp_path):
    reasons, notices = _run(_cfg(tmp_path), ROWS)
    assert reasons == [None, "blocked_domain:sub.bad.example", "blocked_url_pattern", "optout_doc",
                       "optout_domain:private.example.org", "license_not_allowed:CC-BY-NC-4.0", None]
    assert notices == [False] * 6 + [True]  # flagged, kept: the policy does not reject notices


def test_copyright_notices_rejected_when_policy_says_so(tmp_path):
    reasons, _ = _run(_cfg(tmp_path, "[copyright]\nreject_notices = true"), ROWS[-1:])
    assert reasons == ["copyright_notice"]


def test_forget_optout_file_excludes_a_source(tmp_path):
    optout = tmp_path / "optout.toml"
    assert add_optout(optout, "sources", "s") and not add_optout(optout, "sources", "s")
    reasons, _ = _run(_cfg(tmp_path, optout=optout), ROWS[:1])
    assert reasons == ["optout_source"]


def test_domain_of():
    assert domain_of("https://www.Example.org:8080/x") == "example.org" and domain_of(None) == ""


def test_fineweb_ut1_domain_blocklist_is_loaded_and_applied(tmp_path):
    from tasks.curate.rules.legal_policy import _ut1_hashes, _ut1_names

    names = _ut1_names()
    assert len(names) > 1_000_000 and len(_ut1_hashes()) >= 0.99 * len(set(names))  # from datatrove's assets
    listed, other = names[0], names[len(names) // 2]
    cfg = dataclasses.replace(_cfg(tmp_path), ut1_blocklist=True)
    reasons, _ = _run(cfg, [("u1", "s", f"https://www.{listed}/page", "MIT", "x"),
                            ("u2", "s", "https://docs.python.org/3/", "MIT", "x"),
                            ("u3", "s", f"http://a.b.{other}:8080/x", "MIT", "x"),  # a subdomain of a listed one
                            ("u4", "s", f"https://{other}.example-not-listed.test/", "MIT", "x")])
    assert reasons == [f"blocked_domain:{listed}", None, f"blocked_domain:a.b.{other}", None]
    assert _run(dataclasses.replace(cfg, ut1_blocklist=False), [("u1", "s", f"https://{listed}/", "MIT", "x")])[0] == [None]
