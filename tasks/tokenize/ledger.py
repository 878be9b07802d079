"""The provenance ledger: one row per tokenized document with its source, licence, content hash, URL, verdicts
and (dataset, position) in the tokenized data, written by the tokenize stage and named (URI + sha256) on every
registered model, so "which models saw document X" is one query (tasks/govern/lineage.py).

Each encoding task writes its partition's rows (`piece`); one task then streams the pieces, in partition order,
into doc_index.parquet and ledger.parquet, one row group per piece, adding each (source, split) dataset's position
offset: no process holds more than one partition's rows."""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

import pandas as pd

from tasks.core.cluster import read_parquet
from tasks.core.storage import url_to_fs

LEDGER_COLUMNS = ["doc_id", "source_id", "license", "content_sha256", "url", "native_id", "lang", "hap_score",
                  "verdicts", "split", "dataset", "position", "num_tokens"]
INDEX_COLUMNS = ["doc_id", "source_id", "split", "dataset", "position", "num_tokens"]
NUMERIC = {"hap_score": "float64", "position": "int64", "num_tokens": "int64"}
"""Column types of the written files (every other column is a string), fixed so each piece's row group matches."""
META_COLUMNS = ["doc_id", "source_id", "license", "content_sha256", "url", "native_id", "lang", "hap_score"]

REJECTED = "rejected"
"""The split of a ledger row for a document the tokenize stage rejected (decontamination)."""


@dataclass(frozen=True)
class LedgerInfo:
    path: str
    """Output-root-relative path of ledger.parquet."""
    sha256: str
    rows: int
    tokens_by_license: dict[str, int]
    """Training-split tokens per licence."""
    tokens_by_source: dict[str, int]


def piece(meta: pd.DataFrame, split: list[str], num_tokens: list[int], reason: list[str]) -> pd.DataFrame:
    """A partition's ledger rows: its documents' provenance (`meta`, in encoding order within each (source, split)),
    split (or REJECTED, with `reason`) and token counts; positions are added by `write_ledger`."""
    cols = [c for c in META_COLUMNS if c in meta.columns]
    return meta[cols].reset_index(drop=True).assign(split=split, num_tokens=num_tokens, reason=reason)


def write_ledger(pieces: list[str], datasets: dict[str, str], steps: tuple[str, ...], index_uri: str,
                 ledger_uri: str) -> dict:
    """Stream the pieces into doc_index.parquet and ledger.parquet. `datasets`: "source/split" -> dataset prefix.
    Returns the ledger's sha256, rows (without rejected) and training tokens per licence and source."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    passed = "passed:" + ",".join(list(steps) + ["exact_dedup", "near_dedup"])
    offsets: Counter = Counter()
    by_license: Counter = Counter()
    by_source: Counter = Counter()
    rows = 0
    writers: dict[str, pq.ParquetWriter] = {}
    files = {}
    try:
        for uri in pieces:
            df = read_parquet(uri)
            if not len(df):
                continue
            kept = df["split"] != REJECTED
            key = df["source_id"] + "/" + df["split"]
            df["position"] = -1
            for k, idx in df[kept].groupby(key[kept], sort=False).groups.items():
                df.loc[idx, "position"] = range(offsets[k], offsets[k] + len(idx))
                offsets[k] += len(idx)
            df["dataset"] = [datasets.get(k, "") if ok else "" for k, ok in zip(key, kept)]
            df["verdicts"] = [passed if ok else f"{passed};rejected:{r}" for ok, r in zip(kept, df["reason"])]
            train = df[df["split"] == "train"]
            if "license" in df.columns:
                by_license.update(train.groupby("license")["num_tokens"].sum().to_dict())
            by_source.update(train.groupby("source_id")["num_tokens"].sum().to_dict())
            rows += int(kept.sum())
            for name, uri_out, table in (("index", index_uri, df[kept][INDEX_COLUMNS]),
                                         ("ledger", ledger_uri, df[[c for c in LEDGER_COLUMNS if c in df.columns]])):
                schema = pa.schema([(c, pa.from_numpy_dtype(NUMERIC[c]) if c in NUMERIC else pa.string())
                                    for c in table.columns])
                table = table.reset_index(drop=True).astype({c: t for c, t in NUMERIC.items() if c in table.columns})
                t = pa.Table.from_pandas(table, schema=schema, preserve_index=False)
                if name not in writers:
                    fs, path = url_to_fs(uri_out)
                    files[name] = fs.open(path, "wb")
                    writers[name] = pq.ParquetWriter(files[name], t.schema, compression="zstd")
                writers[name].write_table(t)
    finally:
        for name, w in writers.items():
            w.close()
            files[name].close()
    for name, uri_out, cols in (("index", index_uri, INDEX_COLUMNS), ("ledger", ledger_uri, LEDGER_COLUMNS)):
        if name not in writers:  # nothing tokenized: empty files with the columns
            fs, path = url_to_fs(uri_out)
            with fs.open(path, "wb") as f:
                pq.write_table(pa.Table.from_pandas(pd.DataFrame({c: [] for c in cols}), preserve_index=False), f)
    fs, path = url_to_fs(ledger_uri)
    digest = hashlib.sha256()
    with fs.open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return {"sha256": digest.hexdigest(), "rows": rows, "tokens_by_license": {k: int(v) for k, v in by_license.items()},
            "tokens_by_source": {k: int(v) for k, v in by_source.items()}}
