"""Lineage and the right to be forgotten: the provenance ledger, model -> data and data -> model queries,
and tainting the model versions that saw data which has since been opted out."""
from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pandas as pd

from tasks.cluster import Cluster, read_parquet, write_parquet
from tasks.storage import url_to_fs

LEDGER_COLUMNS = ["doc_id", "source_id", "license", "content_sha256", "url", "native_id", "lang", "hap_score",
                  "verdicts", "split", "dataset", "position", "num_tokens"]


def _ledger_part(uri: str) -> pd.DataFrame:
    cols = ["doc_id", "source_id", "license", "content_sha256", "url", "native_id", "lang", "hap_score"]
    df = read_parquet(uri)
    return df[[c for c in cols if c in df.columns]]


def build_ledger(curated_parts: list[str], doc_index_uri: str, steps: list[str], out_uri: str,
                 cluster: Cluster) -> dict:
    """One row per tokenized document with its provenance, verdicts and (dataset, position)."""
    meta = pd.concat(cluster.map(_ledger_part, curated_parts), ignore_index=True)
    index = read_parquet(doc_index_uri).drop(columns=["source_id"])
    ledger = index.merge(meta, on="doc_id", how="left", validate="one_to_one")
    assert ledger["source_id"].notna().all(), "ledger rows without provenance"
    ledger["verdicts"] = "passed:" + ",".join(steps + ["exact_dedup", "near_dedup"])
    ledger = ledger[[c for c in LEDGER_COLUMNS if c in ledger.columns]]
    write_parquet(ledger, out_uri)
    fs, path = url_to_fs(out_uri)
    digest = hashlib.sha256(fs.cat_file(path)).hexdigest()
    train = ledger[ledger["split"] == "train"]
    return {"uri": out_uri, "sha256": digest, "rows": len(ledger),
            "tokens_by_license": {k: int(v) for k, v in train.groupby("license")["num_tokens"].sum().items()},
            "tokens_by_source": {k: int(v) for k, v in train.groupby("source_id")["num_tokens"].sum().items()}}


def _client(tracking_uri: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri)


def _versions(tracking_uri: str) -> list:
    client = _client(tracking_uri)
    return [v for rm in client.search_registered_models() for v in client.search_model_versions(f"name = '{rm.name}'")]


def _resolve(tracking_uri: str, ref: str):
    if "@" not in ref and ":" not in ref:
        raise ValueError(f"model reference {ref!r}: use NAME@ALIAS or NAME:VERSION")
    client = _client(tracking_uri)
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return client.get_model_version_by_alias(name, alias)
    name, version = ref.split(":", 1)
    return client.get_model_version(name, version)


def model_lineage(tracking_uri: str, ref: str) -> dict:
    import json

    v = _resolve(tracking_uri, ref)
    t = v.tags
    return {"model": v.name, "version": str(v.version), "aliases": list(v.aliases),
            "sources": t.get("keel.sources", "").split(","), "licenses": json.loads(t.get("keel.licenses", "{}")),
            "tokens_by_source": json.loads(t.get("keel.tokens_by_source", "{}")),
            "tokens_by_license": json.loads(t.get("keel.tokens_by_license", "{}")),
            "ledger_uri": t.get("keel.ledger_uri"), "ledger_sha256": t.get("keel.ledger_sha256"),
            "stage_hashes": {k.removeprefix("keel.stage_hash."): val for k, val in t.items() if k.startswith("keel.stage_hash.")},
            "tainted": t.get("keel.tainted") == "true", "prefect_flow_run_id": t.get("keel.prefect_flow_run_id")}


def versions_with_source(tracking_uri: str, source_id: str) -> list[dict]:
    return [{"model": v.name, "version": str(v.version), "aliases": list(v.aliases)} for v in _versions(tracking_uri)
            if source_id in v.tags.get("keel.sources", "").split(",")]


def versions_with_doc(tracking_uri: str, doc_id: str) -> list[dict]:
    out = []
    for v in _versions(tracking_uri):
        uri = v.tags.get("keel.ledger_uri")
        if not uri:
            continue
        ledger = read_parquet(uri, columns=["doc_id", "split"])
        hit = ledger[ledger["doc_id"] == doc_id]
        if len(hit):
            out.append({"model": v.name, "version": str(v.version), "aliases": list(v.aliases),
                        "split": hit["split"].iloc[0]})
    return out


def taint(tracking_uri: str, versions: list[dict], reason: str) -> None:
    client = _client(tracking_uri)
    for v in versions:
        client.set_model_version_tag(v["model"], v["version"], "keel.tainted", "true")
        client.set_model_version_tag(v["model"], v["version"], "keel.tainted_reason", reason[:500])


def add_optout(path: str | Path, kind: str, value: str) -> bool:
    """Append an opt-out (kind: sources | doc_ids | domains | url_patterns) to the opt-out file; True if new."""
    path = Path(path)
    data = tomllib.loads(path.read_text()) if path.is_file() else {}
    entries = {k: list(data.get("optout", {}).get(k, [])) for k in ("sources", "doc_ids", "domains", "url_patterns")}
    if value in entries[kind]:
        return False
    entries[kind].append(value)
    lines = ["# Opt-outs recorded by `keel forget` (merged into the policy's [optout]).", "[optout]"]
    for k, vals in entries.items():
        lines.append(f"{k} = [" + ", ".join(f'"{x}"' for x in vals) + "]")
    path.write_text("\n".join(lines) + "\n")
    return True
