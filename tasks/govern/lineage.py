"""Lineage queries: "which data did this model see" and "which models saw this source / document", answered from
the registry's tags (through tasks/track/tracking.py) and the provenance ledger the tokenize stage writes
(tasks/tokenize/ledger.py)."""
from __future__ import annotations

import json

import hashlib
import io

import pandas as pd

from tasks.core.storage import read_bytes
from tasks.tokenize.ledger import REJECTED


def _verified_ledger(uri: str, sha256: str) -> pd.DataFrame:
    """The ledger's doc_id and split columns, if its bytes match the sha256 the registry recorded."""
    from model.integrity import IntegrityError

    blob = read_bytes(uri)
    if hashlib.sha256(blob).hexdigest() != sha256:
        raise IntegrityError(f"ledger {uri} refused: it does not match the sha256 recorded in the registry "
                             f"({sha256[:16] or 'none'}…); it was changed or replaced since the model was registered")
    return pd.read_parquet(io.BytesIO(blob), columns=["doc_id", "split"])


def model_lineage(tracking_uri: str, ref: str) -> dict:
    """Sources, licences, tokens, ledger and stage hashes of a registered version (NAME@ALIAS or NAME:VERSION)."""
    from tasks.track.tracking import resolve_version

    v = resolve_version(tracking_uri, ref)
    t = v["tags"]
    return {"model": v["name"], "version": v["version"], "aliases": v["aliases"],
            "sources": t.get("keel.sources", "").split(","), "licenses": json.loads(t.get("keel.licenses", "{}")),
            "tokens_by_source": json.loads(t.get("keel.tokens_by_source", "{}")),
            "tokens_by_license": json.loads(t.get("keel.tokens_by_license", "{}")),
            "ledger_uri": t.get("keel.ledger_uri"), "ledger_sha256": t.get("keel.ledger_sha256"),
            "stage_hashes": {k.removeprefix("keel.stage_hash."): val for k, val in t.items() if k.startswith("keel.stage_hash.")},
            "tainted": t.get("keel.tainted") == "true", "prefect_flow_run_id": t.get("keel.prefect_flow_run_id")}


def versions_with_source(tracking_uri: str, source_id: str) -> list[dict]:
    from tasks.track.tracking import registry_versions

    return [{"model": v["name"], "version": v["version"], "aliases": v["aliases"]} for v in registry_versions(tracking_uri)
            if source_id in v["tags"].get("keel.sources", "").split(",")]


def versions_with_doc(tracking_uri: str, doc_id: str | set[str]) -> list[dict]:
    """Versions whose training or held-out data held the document (or any of a set of documents)."""
    from tasks.track.tracking import registry_versions

    ids = {doc_id} if isinstance(doc_id, str) else set(doc_id)
    out = []
    for v in registry_versions(tracking_uri):
        uri = v["tags"].get("keel.ledger_uri")
        if not uri:
            continue
        ledger = _verified_ledger(uri, v["tags"].get("keel.ledger_sha256", ""))
        hit = ledger[ledger["doc_id"].isin(ids) & (ledger["split"] != REJECTED)]
        if len(hit):
            out.append({"model": v["name"], "version": v["version"], "aliases": v["aliases"],
                        "split": hit["split"].iloc[0]})
    return out
