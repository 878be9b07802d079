"""The right to be forgotten: record an opt-out (source, document, domain or URL pattern) in the opt-out file that
the legal stage merges into the document policy (shipped to the curation workers as data), taint the registered
versions that saw the data and move their aliases off them, and, on request, purge the text from the output root.

A document opt-out covers its content and its near-duplicate cluster, not only its id: the copies found in the
output root (same content hash; the near-duplicates dedup set aside for it, or that it was set aside for) are
opted out by id and by content hash, so dedup cannot promote a duplicate in its place and a copy under another
id is rejected (`optout_content`).
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tasks.core.cluster import list_parts, read_parquet, write_parquet
from tasks.core.storage import MARKER, exists, join, remove_tree, url_to_fs

KINDS = ("sources", "doc_ids", "domains", "url_patterns", "content_sha256")


@dataclass
class Forgotten:
    """A forgotten document's ids and content hashes (its copies and near-duplicate cluster included)."""
    doc_ids: set[str] = field(default_factory=set)
    content_sha256: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)


def _stage_files(root: str, stage: str, columns: list[str]) -> list[tuple[str, pd.DataFrame]]:
    out = []
    for uri in list_parts(join(root, stage)):
        try:
            df = read_parquet(uri)
        except Exception:  # a partial file from a killed run: nothing to learn from it
            continue
        if set(columns) <= set(df.columns):
            out.append((uri, df))
    return out


def expand(root: str, doc_id: str) -> Forgotten:
    """The document, its exact copies and its near-duplicate cluster, as found in the output root's ingest and
    curate folders (ingested rows give content hashes; dedup rejects give `duplicate_of` links)."""
    f = Forgotten({doc_id}, set())
    ingested = [df[["doc_id", "content_sha256"]] for _, df in _stage_files(root, "ingest", ["doc_id", "content_sha256"])]
    curated = [df[["doc_id", "content_sha256"] + (["duplicate_of"] if "duplicate_of" in df.columns else [])]
               for _, df in _stage_files(root, "curate", ["doc_id", "content_sha256"])]
    rows = pd.concat(ingested + curated, ignore_index=True) if ingested or curated else pd.DataFrame(
        columns=["doc_id", "content_sha256", "duplicate_of"])
    if "duplicate_of" not in rows.columns:
        rows["duplicate_of"] = None
    changed = True
    while changed:  # to a fixed point: ids -> hashes -> ids with those hashes -> duplicate links -> ...
        n = (len(f.doc_ids), len(f.content_sha256))
        mine = rows["doc_id"].isin(f.doc_ids) | rows["content_sha256"].isin(f.content_sha256)
        f.content_sha256 |= set(rows.loc[mine, "content_sha256"].dropna())
        f.doc_ids |= set(rows.loc[mine, "doc_id"]) | set(rows.loc[mine, "duplicate_of"].dropna())
        f.doc_ids |= set(rows.loc[rows["duplicate_of"].isin(f.doc_ids), "doc_id"])
        changed = (len(f.doc_ids), len(f.content_sha256)) != n
    return f


def add_optout(path: str | Path, kind: str, values) -> bool:
    """Add opt-outs (kind: one of KINDS) to the opt-out file; True if any is new."""
    values = [values] if isinstance(values, str) else list(values)
    path = Path(path)
    data = tomllib.loads(path.read_text()) if path.is_file() else {}
    entries = {k: list(data.get("optout", {}).get(k, [])) for k in KINDS}
    new = [v for v in values if v not in entries[kind]]
    if not new:
        return False
    entries[kind] += sorted(set(new), key=new.index)
    lines = ["# Opt-outs recorded by `keel forget` (merged into the policy's [optout]).", "[optout]"]
    for k, vals in entries.items():
        lines.append(f"{k} = [" + ", ".join(f'"{x}"' for x in vals) + "]")
    path.write_text("\n".join(lines) + "\n")
    return True


def taint(tracking_uri: str, versions: list[dict], reason: str) -> list[str]:
    """Tag the versions tainted, then move every alias held by a tainted version of their models; returns what
    happened to each alias."""
    from tasks.track.tracking import set_version_tags

    for v in versions:
        set_version_tags(tracking_uri, v["model"], v["version"], {"keel.tainted": "true", "keel.tainted_reason": reason[:500]})
    return [m for name in sorted({v["model"] for v in versions}) for m in move_aliases(tracking_uri, name)]


def move_aliases(tracking_uri: str, name: str) -> list[str]:
    """Each alias on a tainted version moves to the newest untainted version that passed its gate, or is removed."""
    from tasks.track.tracking import registry_client

    client = registry_client(tracking_uri)
    versions = {str(v.version): dict(v.tags) for v in client.search_model_versions(f"name = '{name}'")}
    clean = sorted((v for v, t in versions.items() if t.get("keel.tainted") != "true" and t.get("keel.gate.promote") == "true"),
                   key=int, reverse=True)
    out = []
    for alias, version in sorted((client.get_registered_model(name).aliases or {}).items()):
        version = str(version)
        if versions.get(version, {}).get("keel.tainted") != "true":
            continue
        if clean:
            client.set_registered_model_alias(name, alias, clean[0])
            out.append(f"{name}@{alias}: version {version} is tainted, moved to version {clean[0]} (the newest "
                       "untainted version that passed its gate)")
        else:
            client.delete_registered_model_alias(name, alias)
            out.append(f"{name}@{alias}: version {version} is tainted and no untainted version passed its gate: "
                       "alias removed")
    return out


TEXT_COLUMNS = ("text", "url")


def purge(root: str, f: Forgotten) -> list[str]:
    """Remove the forgotten text from the output root: rows leave the ingested, curated and work files; rejects
    keep the row with its ids, hashes and reason but no text; task items drawn from it leave the evaluation sets;
    the tokenized datasets that hold it are deleted (their tokens are the text; the next run rebuilds them), the
    ledger and doc index (ids and hashes) kept for lineage.
    Rewritten files no longer match their stage's marker, so those stages run again. Returns what was changed."""
    changed = []
    for stage in ("ingest", "curate", "tokenize"):
        for uri in list_parts(join(root, stage)):
            try:
                df = read_parquet(uri)
            except Exception:
                continue
            if "doc_id" not in df.columns:
                continue
            hit = df["doc_id"].isin(f.doc_ids)
            if "content_sha256" in df.columns:
                hit |= df["content_sha256"].isin(f.content_sha256)
            if "source_id" in df.columns:
                hit |= df["source_id"].isin(f.sources)
            if not hit.any():
                continue
            if "/tokenize/" in uri and uri.rsplit("/", 1)[-1] in ("doc_index.parquet", "ledger.parquet"):
                # ids and hashes only (lineage reads them): kept; the tokens are the text: deleted, with the marker
                folder = uri.rsplit("/", 1)[0]
                if exists(join(folder, MARKER)) or exists(join(folder, "datasets")):
                    remove_tree(join(folder, "datasets"))
                    remove_tree(join(folder, MARKER))
                    changed.append(f"deleted the tokenized datasets of {folder} (the next run rebuilds them)")
                continue
            if "reject_reason" in df.columns or "/rejects/" in uri:
                df = df.copy()
                for c in TEXT_COLUMNS:
                    if c in df.columns:
                        df.loc[hit, c] = ""
                changed.append(f"cleared the text of {int(hit.sum())} rows in {uri}")
            else:
                df = df[~hit]
                changed.append(f"removed {int(hit.sum())} rows from {uri}")
            write_parquet(df, uri)
    changed += _purge_task_items(root, f)
    return changed


def item_sources(item: dict) -> set[str]:
    """The documents a task item's text was taken from."""
    return {item.get("doc_id"), *item.get("sources", ())} - {None}


def _purge_task_items(root: str, f: Forgotten) -> list[str]:
    """Downstream task items (JSONL with a doc_id) whose text comes from a forgotten held-out document: as the item's
    own passage or as one of its wrong choices (`sources`)."""
    import json

    fs, path = url_to_fs(root)
    if not fs.exists(path):
        return []
    out = []
    for p in fs.find(path):
        if not p.endswith(".jsonl"):
            continue
        lines = fs.cat_file(p).decode().splitlines(keepends=True)
        keep = [x for x in lines if not item_sources(json.loads(x)) & f.doc_ids]
        if len(keep) != len(lines):
            with fs.open(p, "wb") as fh:
                fh.write("".join(keep).encode())
            out.append(f"removed {len(lines) - len(keep)} task items from {p}")
    return out


TRACKED_TASK_FOLDER = "evalsets"
"""Where the tokenize stage's MLflow run keeps its task items (flows/publish.py)."""


def purge_tracked(tracking_uri: str, f: Forgotten) -> list[str]:
    """The task items logged to MLflow (every run's `evalsets/*.jsonl`) without those taken from a forgotten
    document: each such file is rewritten in place in the run's artifact store."""
    import json
    import tempfile

    from tasks.track.tracking import registry_client

    client = registry_client(tracking_uri)
    out = []
    for exp in client.search_experiments():
        token = None
        while True:
            runs = client.search_runs([exp.experiment_id], max_results=500, page_token=token)
            for run in runs:
                rid = run.info.run_id
                for art in client.list_artifacts(rid, TRACKED_TASK_FOLDER):
                    if not art.path.endswith(".jsonl"):
                        continue
                    with tempfile.TemporaryDirectory() as tmp:
                        local = Path(client.download_artifacts(rid, art.path, tmp))
                        lines = local.read_text().splitlines(keepends=True)
                        keep = [x for x in lines if not item_sources(json.loads(x)) & f.doc_ids]
                        if len(keep) == len(lines):
                            continue
                        local.write_text("".join(keep))
                        client.log_artifact(rid, str(local), TRACKED_TASK_FOLDER)
                    out.append(f"removed {len(lines) - len(keep)} task items from MLflow run {rid}: {art.path}")
            token = runs.token
            if not token:
                break
    return out
