"""Ingest stage: approved sources -> Parquet document partitions with provenance columns, rejects quarantined.

One Dask task per input file; each writes `docs/<source>-<file>-<chunk>.parquet` and, for malformed records,
`rejects/00_ingest/<source>-<file>.parquet`. Counts are conserved: records read == kept + rejected.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pandas as pd

from tasks.core.cluster import write_parquet
from tasks.core.stage import Counts, Runtime, StageDef
from tasks.core.storage import StageDir, url_to_fs
from tasks.govern.legal import SourceData
from tasks.ingest.readers import Limits, list_files, stream_file


@dataclass(frozen=True)
class IngestSettings:
    limits: Limits
    """Per-record and per-file caps ([sources])."""
    partition_rows: int
    """[dask].partition_rows: documents per output partition."""
    max_quarantined_share: float
    """[sources].max_quarantined_share: fail when more of the files than this killed their worker twice."""


@dataclass(frozen=True)
class IngestInputs:
    sources: tuple[SourceData, ...]
    """The sources the legal gate approved (what reading them needs)."""
    optout_doc_ids: tuple[str, ...] = ()
    optout_content_sha256: tuple[str, ...] = ()
    """Forgotten documents (`keel forget`): rejected as they are read (`optout_doc`, `optout_content`), with their
    id and hash but not their text, so no stage folder holds it again."""


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
                 limits: Limits, forgotten: tuple = ((), ())) -> dict:
    """Stream one file into partitions of `partition_rows` documents and reject files, in bounded memory."""
    kept, reasons, parts, reject_parts = 0, Counter(), 0, 0
    for docs, rejects in stream_file(uri, source, limits, partition_rows, forgotten):
        if len(docs):
            write_parquet(docs, f"{docs_prefix}-{parts:04d}.parquet")
            parts, kept = parts + 1, kept + len(docs)
        if len(rejects):
            write_parquet(rejects, f"{rejects_prefix}-{reject_parts:04d}.parquet")
            reject_parts += 1
            reasons.update(rejects["reject_reason"])
    return {"source_id": source.id, "file": uri, "in": kept + sum(reasons.values()), "kept": kept,
            "rejected": dict(reasons)}


def run(cfg: IngestSettings, inputs: IngestInputs, out: StageDir, rt: Runtime) -> IngestResult:
    jobs = []
    for m in inputs.sources:
        files = list_files(m.data_uri, m.format)
        if not files:
            raise ValueError(f"source {m.id!r}: no {m.format} files under {m.data_uri}; run `keel corpus` "
                             "for the demo sources or fix [data].uri in its manifest")
        for j, f in enumerate(files):
            jobs.append((f, m, out.path("docs", f"{m.id}-{j:05d}"), out.path("rejects", "00_ingest", f"{m.id}-{j:05d}")))
    def quarantine(i: int, error: BaseException) -> dict:
        """A file whose reading killed its worker twice: one reject for the whole file, the run goes on."""
        uri, source, _, rejects_prefix = jobs[i]
        write_parquet(pd.DataFrame([{"source_id": source.id, "origin_file": uri, "record": 0,
                                     "raw": f"{type(error).__name__}: {error}"[:2000], "reject_step": "ingest",
                                     "reject_reason": "worker_killed"}]), f"{rejects_prefix}-quarantine.parquet")
        return {"source_id": source.id, "file": uri, "in": 1, "kept": 0, "rejected": {"worker_killed": 1}}

    results = rt.cluster.map(_ingest_file, *zip(*jobs), partition_rows=cfg.partition_rows, limits=cfg.limits,
                             forgotten=(inputs.optout_doc_ids, inputs.optout_content_sha256), progress="ingest",
                             quarantine=quarantine)
    lost = sum(1 for r in results if r["rejected"].get("worker_killed"))
    if jobs and lost / len(jobs) > cfg.max_quarantined_share:
        raise ValueError(f"ingest: {lost} of {len(jobs)} files killed their worker twice and were quarantined, over "
                         f"[sources].max_quarantined_share = {cfg.max_quarantined_share}")
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
