"""Legal stage: source manifests, the licence policy, and the source-level verdict.

A source enters the pipeline only when its manifest is well-formed, its legal review is `approved`, and its
SPDX licence is in a category the policy allows for the intended use. Anything else stops the run before a single
document is read, with a message that names the source, the rule and the fix. Sources opted out as a whole, and
document-level rules (blocklists, opted-out documents, domains and URL patterns, per-document licences, copyright
notices), travel to curation as a `DocumentPolicy` (applied by tasks/curate/rules/legal_policy.py), so that
`keel forget` re-runs curation but not ingest.
"""
from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tasks.core.cachekey import file_hashes
from tasks.core.stage import Runtime, StageDef
from tasks.core.storage import StageDir, resolve_data_uri
from tasks.ingest.config import SourcesConfig

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
FORMATS = {"jsonl", "parquet", "text", "warc"}
REVIEW_STATUSES = {"approved", "pending", "rejected"}
REQUIRED = ("id", "name", "origin", "owner", "license", "domain", "collected")


class LegalGateError(ValueError):
    """A source may not be used; the message lists every refusal with its fix."""


@dataclass(frozen=True)
class LegalConfig:
    policy: str = "data_contracts/policy.toml"
    """Licence allow-list, blocklists and opt-outs."""
    intended_use: str = "commercial"
    """Which allow-list category set applies: 'commercial' or 'research' (names of the policy's [use.*])."""
    optout: str = "data_contracts/optout.toml"
    """Opt-outs recorded by `keel forget`, merged into the policy's [optout]."""
    ut1_blocklist: bool = True
    """Also block FineWeb's UT1-derived domain list when datatrove's assets are installed."""

    def check(self) -> list[str]:
        if not Path(self.policy).is_file():
            return [f"[legal].policy: {self.policy} not found; point it at a policy TOML (data_contracts/policy.toml)"]
        try:
            load_policy(self.policy).allowed_licenses(self.intended_use)
        except LegalGateError as exc:
            return [f"[legal].intended_use: {exc}"]
        return []


@dataclass(frozen=True)
class GateRequest:
    """What the legal stage decides on: the requested sources and the legal settings."""

    sources: SourcesConfig
    legal: LegalConfig


@dataclass(frozen=True)
class DocumentPolicy:
    """Document-level legal rules, resolved on the driver and shipped to the curation workers as data."""

    allowed_licenses: tuple[str, ...]
    blocked_domains: tuple[str, ...]
    blocked_url_patterns: tuple[str, ...]
    optout_sources: tuple[str, ...]
    optout_domains: tuple[str, ...]
    optout_url_patterns: tuple[str, ...]
    optout_doc_ids: tuple[str, ...]
    reject_copyright_notices: bool
    ut1_blocklist: bool
    """Also block FineWeb's UT1-derived domain list (read on the workers from datatrove's assets)."""
    optout_content_sha256: tuple[str, ...] = ()
    """Opted-out content: a copy of a forgotten document under another id is rejected too."""


@dataclass(frozen=True)
class SourceData:
    """What reading and labelling a source's documents needs (the rest of its manifest does not shape the data)."""

    id: str
    domain: str
    license: str
    format: str
    data_uri: str
    text_field: str
    id_field: str
    url_field: str
    license_field: str


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

    def data(self) -> SourceData:
        return SourceData(id=self.id, domain=self.domain, license=self.license, format=self.format,
                          data_uri=self.data_uri, text_field=self.text_field, id_field=self.id_field,
                          url_field=self.url_field, license_field=self.license_field)

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
    optout_content_sha256: list[str] = field(default_factory=list)
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


def parse_manifest(path: Path, data_root: str, extra_roots: tuple[str, ...] = ()) -> SourceManifest:
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
        uri = resolve_data_uri(str(data["uri"]), data_root, extra_roots)
    except ValueError as exc:
        raise LegalGateError(f"{path}: {exc}") from None
    return SourceManifest(
        id=raw["id"], name=str(raw["name"]), origin=str(raw["origin"]), owner=str(raw["owner"]),
        license=str(raw["license"]), domain=str(raw["domain"]), collected=_as_str(raw["collected"]),
        terms=str(raw.get("terms", "")), data_uri=uri, format=fmt,
        text_field=str(data.get("text_field", "text")), id_field=str(data.get("id_field", "id")),
        url_field=str(data.get("url_field", "url")), license_field=str(data.get("license_field", "license")),
        review_status=review["status"], reviewer=str(review.get("reviewer", "")),
        review_date=_as_str(review.get("date", "")), review_notes=str(review.get("notes", "")))


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
                  optout_content_sha256=list(opt.get("content_sha256", [])),
                  reject_copyright_notices=bool(raw.get("copyright", {}).get("reject_notices", False)))


def gate_sources(ids: tuple[str, ...] | list[str], manifests_dir: str | Path, data_root: str, policy: Policy,
                 use: str, extra_roots: tuple[str, ...] = ()) -> list[SourceManifest]:
    """Approve every requested source or raise LegalGateError listing all refusals."""
    allowed = policy.allowed_licenses(use)
    refusals, approved = [], []
    for sid in ids:
        path = Path(manifests_dir) / f"{sid}.toml"
        if not ID_RE.match(sid) or not path.is_file():
            refusals.append(f"source {sid!r}: unknown source (no manifest {path}); add a manifest with a legal review")
            continue
        try:
            m = parse_manifest(path, data_root, extra_roots)
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


@dataclass(frozen=True)
class LegalResult:
    sources: tuple[SourceManifest, ...]
    """Approved sources, in recipe order."""
    intended_use: str
    allowed_licenses: tuple[str, ...]
    policy: DocumentPolicy


def document_policy(policy: Policy, use: str, ut1: bool) -> DocumentPolicy:
    t = lambda xs: tuple(sorted(set(xs)))  # noqa: E731
    return DocumentPolicy(
        allowed_licenses=t(policy.allowed_licenses(use)), blocked_domains=t(d.lower() for d in policy.blocked_domains),
        blocked_url_patterns=tuple(policy.blocked_url_patterns), optout_sources=t(policy.optout_sources),
        optout_domains=t(d.lower() for d in policy.optout_domains), optout_url_patterns=tuple(policy.optout_url_patterns),
        optout_doc_ids=t(policy.optout_doc_ids), reject_copyright_notices=policy.reject_copyright_notices, ut1_blocklist=ut1,
        optout_content_sha256=t(policy.optout_content_sha256))


def run(cfg: GateRequest, inputs: None, out: StageDir, rt: Runtime) -> LegalResult:
    policy = load_policy(cfg.legal.policy, cfg.legal.optout)
    approved = gate_sources(cfg.sources.ids, cfg.sources.manifests, cfg.sources.data_root, policy, cfg.legal.intended_use,
                            extra_roots=cfg.sources.extra_roots)
    return LegalResult(sources=tuple(approved), intended_use=cfg.legal.intended_use,
                       allowed_licenses=tuple(sorted(policy.allowed_licenses(cfg.legal.intended_use))),
                       policy=document_policy(policy, cfg.legal.intended_use, cfg.legal.ut1_blocklist))


def reads(cfg: GateRequest, inputs: None) -> list:
    return file_hashes([cfg.legal.policy, cfg.legal.optout] +
                       [str(Path(cfg.sources.manifests) / f"{sid}.toml") for sid in cfg.sources.ids])


STAGE = StageDef(name="legal", run=run, result=LegalResult, reads=reads)
