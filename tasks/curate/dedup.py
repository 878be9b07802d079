"""Global dedup steps of curation: duplicate ids, exact duplicates (normalised-text hash) and MinHash near
duplicates, each choosing survivors deterministically whatever the partitioning (the smallest doc_id wins)."""
from __future__ import annotations

import hashlib

import pandas as pd

from tasks.curate.config import DedupConfig
from tasks.curate.minhash import clusters


def dedup_key(text: str) -> str:
    """Exact-duplicate key: hash of the lower-cased text with whitespace collapsed."""
    return hashlib.sha1(" ".join(text.lower().split()).encode("utf-8", "surrogatepass")).hexdigest()


def band_columns(cfg: DedupConfig) -> list[str]:
    return [f"lsh_{b:02d}" for b in range(cfg.bands)] if cfg.near else []


def choose_drops(keys: list[pd.DataFrame], cfg: DedupConfig) -> list[dict]:
    """Per partition {row: (step, reason, survivor doc_id)}; deterministic whatever the partitioning."""
    frames = [k.assign(part=i, row=range(len(k))) for i, k in enumerate(keys)]
    allk = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["doc_id", "dedup_key", "part", "row"])
    drops: list[dict] = [{} for _ in keys]

    def mark(rows: pd.DataFrame, survivors, step: str, reason: str) -> None:
        for part, row, s in zip(rows["part"], rows["row"], survivors):
            drops[part][row] = (step, reason, s)

    dup_id = allk.duplicated("doc_id", keep="first")
    mark(allk[dup_id], allk[dup_id]["doc_id"], "duplicate_id", "duplicate_doc_id")
    rest = allk[~dup_id]
    if cfg.exact:
        survivor = rest.groupby("dedup_key")["doc_id"].transform("min")
        lost = rest["doc_id"] != survivor
        mark(rest[lost], survivor[lost], "exact_dedup", "exact_duplicate")
        rest = rest[~lost]
    if cfg.near and len(rest):
        survivor = clusters(rest["doc_id"].reset_index(drop=True), rest[band_columns(cfg)].to_numpy())
        lost = rest["doc_id"].to_numpy() != survivor
        mark(rest[lost], survivor[lost], "near_dedup", "near_duplicate")
    return drops
