"""Legal and provenance gate: source manifests, the licence policy, and the source-level verdict.

A source enters the pipeline only when its manifest is well-formed, its legal review is `approved`, it is not
opted out, and its SPDX licence is in a category the policy allows for the intended use. Anything else stops the
run before a single document is read, with a message that names the source, the rule and the fix.
"""
from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tasks.storage import resolve_data_uri

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
FORMATS = {"jsonl", "parquet", "text", "warc"}
REVIEW_STATUSES = {"approved", "pending", "rejected"}
REQUIRED = ("id", "name", "origin", "owner", "license", "domain", "collected")


class LegalGateError(ValueError):
    """A source may not be used; the message lists every refusal with its fix."""


@dataclass(frozen=True)
class SourceManifest:
    id: str
    name: str
    origin: str
    owner: str
    license: str
    domain: str
    collected: str
    terms: str
    data_uri: str
    format: str
    text_field: str
    id_field: str
    url_field: str
    license_field: str
    review_status: str
    reviewer: str
    review_date: str
    review_notes: str
    path: str = ""

    def provenance(self) -> dict:
        return {"id": self.id, "origin": self.origin, "owner": self.owner, "license": self.license,
                "domain": self.domain, "collected": self.collected, "review_status": self.review_status,
                "reviewer": self.reviewer, "review_date": self.review_date}


@dataclass
class Policy:
    categories: dict[str, list[str]]
    uses: dict[str, list[str]]
    blocked_domains: list[str] = field(default_factory=list)
    blocked_url_patterns: list[str] = field(default_factory=list)
    optout_sources: list[str] = field(default_factory=list)
    optout_domains: list[str] = field(default_factory=list)
    optout_url_patterns: list[str] = field(default_factory=list)
    optout_doc_ids: list[str] = field(default_factory=list)
    reject_copyright_notices: bool = False

    def allowed_licenses(self, use: str) -> set[str]:
        if use not in self.uses:
            raise LegalGateError(f"policy has no intended use {use!r}; known uses: {sorted(self.uses)} "
                                 "(set [legal].intended_use)")
        return {lic for cat in self.uses[use] for lic in self.categories.get(cat, [])}

    def category_of(self, license_id: str) -> str | None:
        return next((c for c, ids in self.categories.items() if license_id in ids), None)


def _as_str(v) -> str:
    return v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else str(v)


def parse_manifest(path: Path, data_root: str) -> SourceManifest:
    """Parse and validate one manifest; raises LegalGateError naming the file and the problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LegalGateError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    missing = [k for k in REQUIRED if not str(raw.get(k, "")).strip()]
    if missing:
        raise LegalGateError(f"{path}: missing required field(s) {missing}")
    if not ID_RE.match(str(raw["id"])):
        raise LegalGateError(f"{path}: id {raw['id']!r} must match {ID_RE.pattern}")
    if path.stem != raw["id"]:
        raise LegalGateError(f"{path}: file name must be <id>.toml (id is {raw['id']!r})")
    data = raw.get("data") or {}
    review = raw.get("review") or {}
    if not isinstance(data, dict) or not data.get("uri"):
        raise LegalGateError(f"{path}: [data].uri is required (where the documents are)")
    fmt = data.get("format", "jsonl")
    if fmt not in FORMATS:
        raise LegalGateError(f"{path}: [data].format {fmt!r} is not one of {sorted(FORMATS)}")
    if not isinstance(review, dict) or review.get("status") not in REVIEW_STATUSES:
        raise LegalGateError(f"{path}: [review].status must be one of {sorted(REVIEW_STATUSES)}")
    try:
        uri = resolve_data_uri(str(data["uri"]), data_root)
    except ValueError as exc:
        raise LegalGateError(f"{path}: {exc}") from None
    return SourceManifest(
        id=raw["id"], name=str(raw["name"]), origin=str(raw["origin"]), owner=str(raw["owner"]),
        license=str(raw["license"]), domain=str(raw["domain"]), collected=_as_str(raw["collected"]),
        terms=str(raw.get("terms", "")), data_uri=uri, format=fmt,
        text_field=str(data.get("text_field", "text")), id_field=str(data.get("id_field", "id")),
        url_field=str(data.get("url_field", "url")), license_field=str(data.get("license_field", "license")),
        review_status=review["status"], reviewer=str(review.get("reviewer", "")),
        review_date=_as_str(review.get("date", "")), review_notes=str(review.get("notes", "")), path=str(path))


def load_policy(path: str | Path, optout_path: str | Path | None = None) -> Policy:
    """The policy file, with the opt-outs of `optout_path` (written by `keel forget`) merged in."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LegalGateError(f"policy {path} not found; set [legal].policy") from None
    lic = raw.get("licenses", {})
    uses = {name: list(v.get("allow", [])) for name, v in raw.get("use", {}).items()}
    block = raw.get("blocklist", {})
    opt = {k: list(v) for k, v in raw.get("optout", {}).items()}
    if optout_path and Path(optout_path).is_file():
        for k, v in tomllib.loads(Path(optout_path).read_text()).get("optout", {}).items():
            opt[k] = opt.get(k, []) + [x for x in v if x not in opt.get(k, [])]
    return Policy(categories={k: list(v) for k, v in lic.items()}, uses=uses,
                  blocked_domains=list(block.get("domains", [])), blocked_url_patterns=list(block.get("url_patterns", [])),
                  optout_sources=list(opt.get("sources", [])), optout_domains=list(opt.get("domains", [])),
                  optout_url_patterns=list(opt.get("url_patterns", [])), optout_doc_ids=list(opt.get("doc_ids", [])),
                  reject_copyright_notices=bool(raw.get("copyright", {}).get("reject_notices", False)))


def gate_sources(ids: list[str], manifests_dir: str | Path, data_root: str, policy: Policy,
                 use: str) -> list[SourceManifest]:
    """Approve every requested source or raise LegalGateError listing all refusals."""
    allowed = policy.allowed_licenses(use)
    refusals, approved = [], []
    for sid in ids:
        path = Path(manifests_dir) / f"{sid}.toml"
        if not ID_RE.match(sid) or not path.is_file():
            refusals.append(f"source {sid!r}: unknown source (no manifest {path}); add a manifest with a legal review")
            continue
        try:
            m = parse_manifest(path, data_root)
        except LegalGateError as exc:
            refusals.append(f"source {sid!r}: malformed manifest: {exc}")
            continue
        if m.review_status != "approved":
            refusals.append(f"source {sid!r}: legal review is {m.review_status!r}, not 'approved' "
                            f"(reviewer {m.reviewer or 'none'}); finish the review in {path}")
        elif m.license not in allowed:
            cat = policy.category_of(m.license) or "not in any policy category"
            refusals.append(f"source {sid!r}: licence {m.license} ({cat}) is not allowed for intended use {use!r}; "
                            f"allowed categories: {policy.uses.get(use)}")
        else:
            approved.append(m)
    if refusals:
        raise LegalGateError("legal gate refused the run; nothing was ingested:\n  - " + "\n  - ".join(refusals))
    return approved
