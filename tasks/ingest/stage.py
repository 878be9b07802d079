"""Ingest stage: approved sources -> Parquet document partitions with provenance columns, rejects quarantined.

One Dask task per input file; each writes `docs/<source>-<file>-<chunk>.parquet` and, for malformed records,
`rejects/00_ingest/<source>-<file>.parquet`. Counts are conserved: records read == kept + rejected.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tasks.core.cluster import write_parquet
from tasks.core.stage import Counts, Runtime, StageDef
from tasks.core.storage import StageDir, url_to_fs
from tasks.govern.legal import SourceData
from tasks.ingest.readers import list_files, read_file


@dataclass(frozen=True)
class IngestSettings:
    max_doc_bytes: int
    """[sources].max_doc_bytes."""
    partition_rows: int
    """[dask].partition_rows: documents per output partition."""


@dataclass(frozen=True)
class IngestInputs:
    sources: tuple[SourceData, ...]
    """The sources the legal gate approved (what reading them needs)."""


@dataclass(frozen=True)
class SourceCounts:
    received: int
    kept: int
    rejected: dict[str, int]


@dataclass(frozen=True)
class IngestResult:
    docs: str
    """Output-root-relative folder of document partitions."""
    counts: Counts
    rejected_by_reason: dict[str, int]
    per_source: dict[str, SourceCounts]
    files: int


def _ingest_file(uri: str, source: SourceData, docs_prefix: str, rejects_prefix: str, partition_rows: int,
                 max_doc_bytes: int) -> dict:
    docs, rejects = read_file(uri, source, max_doc_bytes)
    for i, start in enumerate(range(0, len(docs), partition_rows)):
        write_parquet(docs.iloc[start:start + partition_rows], f"{docs_prefix}-{i:04d}.parquet")
    if len(rejects):
        write_parquet(rejects, f"{rejects_prefix}.parquet")
    return {"source_id": source.id, "file": uri, "in": len(docs) + len(rejects), "kept": len(docs),
            "rejected": dict(Counter(rejects["reject_reason"]))}


def run(cfg: IngestSettings, inputs: IngestInputs, out: StageDir, rt: Runtime) -> IngestResult:
    jobs = []
    for m in inputs.sources:
        files = list_files(m.data_uri, m.format)
        if not files:
            raise ValueError(f"source {m.id!r}: no {m.format} files under {m.data_uri}; run `keel corpus` "
                             "for the demo sources or fix [data].uri in its manifest")
        for j, f in enumerate(files):
            jobs.append((f, m, out.path("docs", f"{m.id}-{j:05d}"), out.path("rejects", "00_ingest", f"{m.id}-{j:05d}")))
    results = rt.cluster.map(_ingest_file, *zip(*jobs), partition_rows=cfg.partition_rows,
                             max_doc_bytes=cfg.max_doc_bytes, progress="ingest")
    per_source: dict[str, dict] = {}
    for r in results:
        s = per_source.setdefault(r["source_id"], {"in": 0, "kept": 0, "rejected": Counter()})
        s["in"] += r["in"]
        s["kept"] += r["kept"]
        s["rejected"].update(r["rejected"])
    rejected = sum((s["rejected"] for s in per_source.values()), Counter())
    return IngestResult(
        docs=out.rel("docs"),
        counts=Counts(sum(s["in"] for s in per_source.values()), sum(s["kept"] for s in per_source.values()),
                      sum(rejected.values())),
        rejected_by_reason=dict(rejected), files=len(jobs),
        per_source={k: SourceCounts(v["in"], v["kept"], dict(v["rejected"])) for k, v in per_source.items()})


def fingerprint(cfg: IngestSettings, inputs: IngestInputs) -> dict:
    """What the raw files look like now (name, size, modification time or ETag): new or changed files re-ingest."""
    out = {}
    for m in inputs.sources:
        fs, _ = url_to_fs(m.data_uri)
        rows = []
        for f in list_files(m.data_uri, m.format):
            info = fs.info(url_to_fs(f)[1])
            rows.append([f, info.get("size"), str(info.get("mtime") or info.get("ETag") or info.get("LastModified"))])
        out[m.id] = rows
    return out


STAGE = StageDef(name="ingest", run=run, result=IngestResult, reads=fingerprint)
