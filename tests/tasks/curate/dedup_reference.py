"""The single-process dedup the cluster version must agree with: every key gathered in one frame, duplicate ids
(first row wins), exact groups (smallest doc_id wins), connected components of shared LSH buckets among the exact
survivors (smallest doc_id wins)."""
from __future__ import annotations

import pandas as pd

from tasks.curate.config import DedupConfig
from tasks.curate.dedup import band_columns
from tasks.curate.minhash import clusters


def reference_drops(keys: list[pd.DataFrame], cfg: DedupConfig) -> list[dict]:
    """Per partition {row: (step, reason, survivor doc_id)}."""
    frames = [k.assign(part=i, row=range(len(k))) for i, k in enumerate(keys)]
    allk = pd.concat(frames, ignore_index=True)
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
