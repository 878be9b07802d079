"""Document-level legal checks during curation: URL/domain blocklist, opt-outs, per-document licences and
copyright notices. Policy comes from data_contracts/policy.toml (plus, optionally, FineWeb's UT1-derived
domain blocklist shipped in datatrove's assets when that package is installed)."""
from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from tasks.curation import StepResult, _result

_COPYRIGHT = re.compile(r"(all rights reserved|©\s*\d{4}|\(c\)\s*\d{4}|copyright\s+(?:©\s*)?\d{4})", re.I)


def domain_of(url) -> str:
    if not isinstance(url, str) or not url:
        return ""
    host = (urlsplit(url if "://" in url else "//" + url).hostname or "").lower()
    return host.removeprefix("www.")


def _matches_domain(host: str, domains: frozenset[str]) -> bool:
    """True when host or any parent domain is listed (example.org blocks a.b.example.org)."""
    parts = host.split(".")
    return any(".".join(parts[i:]) in domains for i in range(len(parts) - 1))


@lru_cache(maxsize=4)
def _policy(path: str, optout_path: str, use: str, ut1: bool, _stamp: str):
    from tasks.legal import load_policy

    p = load_policy(path, optout_path or None)
    blocked = set(d.lower() for d in p.blocked_domains)
    if ut1:
        blocked |= _ut1_domains()
    return (p, frozenset(blocked), frozenset(d.lower() for d in p.optout_domains),
            [re.compile(x) for x in p.blocked_url_patterns], [re.compile(x) for x in p.optout_url_patterns],
            frozenset(p.optout_doc_ids), frozenset(p.allowed_licenses(use)), frozenset(p.optout_sources))


UT1_ARCHIVE = "url_filterblacklistsv0_3_0.tar.gz"


@lru_cache(maxsize=1)
def _ut1_domains() -> frozenset[str]:
    """FineWeb's UT1-derived domain blocklist (4.5M domains) from datatrove's packaged assets, read without
    importing datatrove (the Makefile installs the package without its dependencies). Empty if absent."""
    import importlib.util
    import tarfile
    from pathlib import Path

    spec = importlib.util.find_spec("datatrove")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    archive = Path(list(spec.submodule_search_locations)[0]) / "assets" / UT1_ARCHIVE
    if not archive.is_file():
        return frozenset()
    with tarfile.open(archive, "r:gz") as tar:
        member = next(m for m in tar.getmembers() if m.name.rstrip("/").endswith("domains") and m.isfile())
        data = tar.extractfile(member).read().decode("utf-8", "replace")
    return frozenset(x.strip().lower() for x in data.splitlines() if x.strip() and not x.startswith("#"))


def legal_policy(df: pd.DataFrame, cfg) -> StepResult:
    """Reject opted-out, blocklisted or unlicensed documents; flag (or reject) copyright notices."""
    import os

    stamp = "|".join(str(os.stat(p).st_mtime_ns) if p and os.path.exists(p) else "-"
                     for p in (cfg.policy_path, cfg.optout_path))
    policy, blocked, optout_domains, blocked_pat, optout_pat, optout_ids, allowed, optout_sources = _policy(
        cfg.policy_path, cfg.optout_path, cfg.intended_use, cfg.ut1_blocklist, stamp)
    reasons, notices = [], []
    for doc_id, src, url, lic, text in zip(df["doc_id"], df["source_id"], df["url"], df["license"], df["text"]):
        host = domain_of(url)
        notice = bool(_COPYRIGHT.search(text[:20000]))
        notices.append(notice)
        if src in optout_sources:
            reasons.append("optout_source")
        elif doc_id in optout_ids:
            reasons.append("optout_doc")
        elif host and _matches_domain(host, optout_domains):
            reasons.append(f"optout_domain:{host}")
        elif isinstance(url, str) and any(p.search(url) for p in optout_pat):
            reasons.append("optout_url_pattern")
        elif host and _matches_domain(host, blocked):
            reasons.append(f"blocked_domain:{host}")
        elif isinstance(url, str) and any(p.search(url) for p in blocked_pat):
            reasons.append("blocked_url_pattern")
        elif lic not in allowed:
            reasons.append(f"license_not_allowed:{lic}")
        elif notice and policy.reject_copyright_notices:
            reasons.append("copyright_notice")
        else:
            reasons.append(None)
    return _result(df, reasons, {"copyright_notice": np.array(notices, dtype=bool)})
