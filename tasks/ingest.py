"""Ingest: approved sources -> Parquet document partitions with provenance columns, rejects quarantined.

One Dask task per input file; each writes `docs/<source>-<file>-<chunk>.parquet` and, for malformed records,
`rejects/00_ingest/<source>-<file>.parquet`. Counts are conserved: records read == kept + rejected.
"""
from __future__ import annotations

from collections import Counter

from tasks.cluster import Cluster, write_parquet
from tasks.legal import SourceManifest
from tasks.readers import list_files, read_file
from tasks.storage import StageDir


def _ingest_file(uri: str, source: dict, docs_prefix: str, rejects_prefix: str, partition_rows: int) -> dict:
    docs, rejects = read_file(uri, source, source["max_doc_bytes"])
    for i, start in enumerate(range(0, len(docs), partition_rows)):
        write_parquet(docs.iloc[start:start + partition_rows], f"{docs_prefix}-{i:04d}.parquet")
    if len(rejects):
        write_parquet(rejects, f"{rejects_prefix}.parquet")
    return {"source_id": source["id"], "file": uri, "in": len(docs) + len(rejects), "kept": len(docs),
            "rejected": dict(Counter(rejects["reject_reason"]))}


def ingest(sources: list[SourceManifest], stage: StageDir, cluster: Cluster, partition_rows: int,
           max_doc_bytes: int) -> dict:
    jobs = []
    for m in sources:
        files = list_files(m.data_uri, m.format)
        if not files:
            raise ValueError(f"source {m.id!r}: no {m.format} files under {m.data_uri}; run `keel corpus` "
                             "for the demo sources or fix [data].uri in its manifest")
        src = {"id": m.id, "domain": m.domain, "license": m.license, "format": m.format,
               "text_field": m.text_field, "id_field": m.id_field, "url_field": m.url_field,
               "license_field": m.license_field, "max_doc_bytes": max_doc_bytes}
        for j, f in enumerate(files):
            jobs.append((f, src, stage.path("docs", f"{m.id}-{j:05d}"), stage.path("rejects", "00_ingest", f"{m.id}-{j:05d}")))
    results = cluster.map(_ingest_file, *zip(*jobs), partition_rows=partition_rows, progress="ingest")
    per_source: dict[str, dict] = {}
    for r in results:
        s = per_source.setdefault(r["source_id"], {"in": 0, "kept": 0, "rejected": Counter()})
        s["in"] += r["in"]
        s["kept"] += r["kept"]
        s["rejected"].update(r["rejected"])
    total_in = sum(s["in"] for s in per_source.values())
    kept = sum(s["kept"] for s in per_source.values())
    rejected = sum((s["rejected"] for s in per_source.values()), Counter())
    assert total_in == kept + sum(rejected.values()), "ingest conservation violated"
    return {"counts": {"in": total_in, "kept": kept, "rejected": sum(rejected.values())},
            "rejected_by_reason": dict(rejected),
            "per_source": {k: {**v, "rejected": dict(v["rejected"])} for k, v in per_source.items()},
            "files": len(jobs)}
