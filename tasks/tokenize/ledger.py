"""The provenance ledger: one row per tokenized document with its source, licence, content hash, URL, verdicts
and (dataset, position) in the tokenized data, written by the tokenize stage and named (URI + sha256) on every
registered model, so "which models saw document X" is one query (tasks/govern/lineage.py)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from tasks.core.cluster import Cluster, read_parquet, write_parquet
from tasks.core.storage import read_bytes

LEDGER_COLUMNS = ["doc_id", "source_id", "license", "content_sha256", "url", "native_id", "lang", "hap_score",
                  "verdicts", "split", "dataset", "position", "num_tokens"]

REJECTED = "rejected"
"""The split of a ledger row for a document the tokenize stage rejected (decontamination)."""


def _ledger_part(uri: str) -> pd.DataFrame:
    cols = ["doc_id", "source_id", "license", "content_sha256", "url", "native_id", "lang", "hap_score"]
    df = read_parquet(uri)
    return df[[c for c in cols if c in df.columns]]


@dataclass(frozen=True)
class LedgerInfo:
    path: str
    """Output-root-relative path of ledger.parquet."""
    sha256: str
    rows: int
    tokens_by_license: dict[str, int]
    """Training-split tokens per licence."""
    tokens_by_source: dict[str, int]


def build_ledger(curated_parts: list[str], doc_index_uri: str, steps: tuple[str, ...], out_uri: str, out_rel: str,
                 cluster: Cluster, rejected: dict[str, str] | None = None) -> LedgerInfo:
    """One row per tokenized document with its provenance, verdicts and (dataset, position); and one per curated
    document the tokenize stage rejected (`rejected`: doc_id -> reason), with split 'rejected', no dataset and the
    reason in its verdicts: no model saw it."""
    meta = pd.concat(cluster.map(_ledger_part, curated_parts), ignore_index=True)
    index = read_parquet(doc_index_uri).drop(columns=["source_id"])
    ledger = index.merge(meta, on="doc_id", how="left", validate="one_to_one")
    assert ledger["source_id"].notna().all(), "ledger rows without provenance"
    passed = ",".join(list(steps) + ["exact_dedup", "near_dedup"])
    ledger["verdicts"] = "passed:" + passed
    if rejected:
        gone = meta[meta["doc_id"].isin(rejected.keys())].copy()
        gone["verdicts"] = "passed:" + passed + ";rejected:" + gone["doc_id"].map(rejected)
        gone = gone.assign(split=REJECTED, dataset="", position=-1, num_tokens=0)
        ledger = pd.concat([ledger, gone], ignore_index=True)
    ledger = ledger[[c for c in LEDGER_COLUMNS if c in ledger.columns]]
    write_parquet(ledger, out_uri)
    digest = hashlib.sha256(read_bytes(out_uri)).hexdigest()
    train = ledger[ledger["split"] == "train"]
    return LedgerInfo(path=out_rel, sha256=digest, rows=int((ledger["split"] != REJECTED).sum()),
                      tokens_by_license={k: int(v) for k, v in train.groupby("license")["num_tokens"].sum().items()},
                      tokens_by_source={k: int(v) for k, v in train.groupby("source_id")["num_tokens"].sum().items()})
