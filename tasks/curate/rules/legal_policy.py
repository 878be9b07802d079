"""Rule `legal_policy`: document-level legal checks during curation: URL/domain blocklist, opt-outs, per-document
licences and copyright notices. Its config is the `DocumentPolicy` the legal stage resolved from the policy and
opt-out files (plus, optionally, FineWeb's UT1-derived domain blocklist shipped in datatrove's assets)."""
from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from tasks.curate.step import StepResult, result
from tasks.curate.text import strip_invisible
from tasks.govern.legal import DocumentPolicy

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
def _compiled(policy: DocumentPolicy):
    return (frozenset(policy.blocked_domains), frozenset(policy.optout_domains),
            [re.compile(x) for x in policy.blocked_url_patterns], [re.compile(x) for x in policy.optout_url_patterns],
            frozenset(policy.optout_doc_ids), frozenset(policy.allowed_licenses), frozenset(policy.optout_sources),
            frozenset(policy.optout_content_sha256))


UT1_ARCHIVE = "url_filterblacklistsv0_3_0.tar.gz"


def _ut1_names() -> list[str]:
    """FineWeb's UT1-derived domain blocklist (4.5M domains) from datatrove's packaged assets, read without
    importing datatrove (the Makefile installs the package without its dependencies). Empty if absent."""
    import tarfile

    archive = ut1_archive()
    if archive is None:
        return []
    with tarfile.open(archive, "r:gz") as tar:
        member = next(m for m in tar.getmembers() if m.name.rstrip("/").endswith("domains") and m.isfile())
        data = tar.extractfile(member).read().decode("utf-8", "replace")
    return [x.strip().lower() for x in data.splitlines() if x.strip() and not x.startswith("#")]


@lru_cache(maxsize=1)
def _ut1_hashes() -> np.ndarray:
    """The UT1 list as sorted 64-bit hashes (36 MB instead of a ~1 GB set of strings; a worker holds it once and
    its forked children share it): a host is blocked when it or a parent domain hashes to a listed value (a false
    match needs a 64-bit collision)."""
    import xxhash

    h = xxhash.xxh3_64_intdigest
    return np.unique(np.fromiter((h(name) for name in _ut1_names()), dtype=np.uint64))


def _in_ut1(host: str) -> bool:
    import xxhash

    listed = _ut1_hashes()
    if not len(listed):
        return False
    parts = host.split(".")
    keys = np.array([xxhash.xxh3_64_intdigest(".".join(parts[i:])) for i in range(len(parts) - 1)], dtype=np.uint64)
    at = np.minimum(np.searchsorted(listed, keys), len(listed) - 1)
    return bool((listed[at] == keys).any())


def ut1_archive() -> Path | None:
    """The UT1 blocklist archive in datatrove's installed assets, if present."""
    spec = importlib.util.find_spec("datatrove")
    if spec is None or not spec.submodule_search_locations:
        return None
    archive = Path(list(spec.submodule_search_locations)[0]) / "assets" / UT1_ARCHIVE
    return archive if archive.is_file() else None


def legal_policy(df: pd.DataFrame, policy: DocumentPolicy) -> StepResult:
    """Reject opted-out, blocklisted or unlicensed documents; flag (or reject) copyright notices."""
    blocked, optout_domains, blocked_pat, optout_pat, optout_ids, allowed, optout_sources, optout_hashes = _compiled(policy)
    reasons, notices = [], []
    hashes = df["content_sha256"] if "content_sha256" in df.columns else [None] * len(df)
    for doc_id, src, url, lic, text, sha in zip(df["doc_id"], df["source_id"], df["url"], df["license"], df["text"],
                                                hashes):
        url = strip_invisible(url) if isinstance(url, str) else url  # b\u00adad.example is bad.example
        host = domain_of(url)
        notice = bool(_COPYRIGHT.search(strip_invisible(text[:20000])))
        notices.append(notice)
        if src in optout_sources:
            reasons.append("optout_source")
        elif doc_id in optout_ids:
            reasons.append("optout_doc")
        elif sha in optout_hashes:
            reasons.append("optout_content")
        elif host and _matches_domain(host, optout_domains):
            reasons.append(f"optout_domain:{host}")
        elif isinstance(url, str) and any(p.search(url) for p in optout_pat):
            reasons.append("optout_url_pattern")
        elif host and (_matches_domain(host, blocked) or (policy.ut1_blocklist and _in_ut1(host))):
            reasons.append(f"blocked_domain:{host}")
        elif isinstance(url, str) and any(p.search(url) for p in blocked_pat):
            reasons.append("blocked_url_pattern")
        elif lic not in allowed:
            reasons.append(f"license_not_allowed:{lic}")
        elif notice and policy.reject_copyright_notices:
            reasons.append("copyright_notice")
        else:
            reasons.append(None)
    return result(df, reasons, {"copyright_notice": np.array(notices, dtype=bool)})
