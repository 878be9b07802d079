"""Curation on Dask: partition-local rules, then global dedup, with every removed document kept as a reject.

Phase 1 (one Dask task per ingest partition): run the local rules in order, writing each step's rejects to
`rejects/<NN>_<step>/` and the survivors, with their dedup key, to `_work/`. Phase 2 (driver): gather the small
(doc_id, dedup key) table and choose survivors deterministically (first occurrence of a doc_id; smallest doc_id
per exact-duplicate key). Phase 3 (one Dask task per partition): write kept rows to `data/` and duplicates to
their rejects folders. Conservation `in == kept + rejected` is asserted per step and for the stage.
"""
from __future__ import annotations

from collections import Counter

import pandas as pd

from tasks.cluster import Cluster, list_parts, part_sizes, read_parquet, write_parquet
from tasks.curation import dedup_key
from tasks.minhash import band_keys, signatures
from tasks.rules import GLOBAL_STEPS, RULES, validate_steps
from tasks.storage import StageDir, join


def _step_dir(stage_uri: str, step: str, cfg) -> str:
    number = (list(cfg.steps) + GLOBAL_STEPS).index(step) + 1
    return join(stage_uri, "rejects", f"{number:02d}_{step}")


def _band_columns(cfg) -> list[str]:
    return [f"lsh_{b:02d}" for b in range(cfg.minhash_bands)] if cfg.near_dedup else []


def _stat(step: str, before: pd.DataFrame, reasons: pd.Series) -> dict:
    return {"step": step, "in": len(before), "kept": int(reasons.isna().sum()),
            "bytes_in": int(before["text"].str.len().sum()) if len(before) else 0,
            "rejected": dict(Counter(reasons.dropna()))}


def _local(part_uri: str, name: str, stage_uri: str, cfg) -> list[dict]:
    df = read_parquet(part_uri)
    stats = []
    for step in cfg.steps:
        res = RULES[step](df, cfg)
        out = res.frame.assign(**res.signals)
        reasons = pd.Series(res.reasons, index=out.index)
        stats.append(_stat(step, df, reasons))
        dropped = out[~res.keep]
        if len(dropped):
            write_parquet(dropped.assign(reject_step=step, reject_reason=reasons[~res.keep].astype(str)),
                          join(_step_dir(stage_uri, step, cfg), f"{name}.parquet"))
        df = out[res.keep].reset_index(drop=True)
    df = df.assign(dedup_key=[dedup_key(t) for t in df["text"]])
    if cfg.near_dedup:
        keys = band_keys(signatures(df["text"].tolist(), cfg.minhash_ngram, cfg.minhash_bands * cfg.minhash_rows),
                         cfg.minhash_bands, cfg.minhash_rows)
        df = df.assign(**{c: keys[:, i] for i, c in enumerate(_band_columns(cfg))})
    write_parquet(df, join(stage_uri, "_work", f"{name}.parquet"))
    return stats


def _keys(work_uri: str, bands: list[str]) -> pd.DataFrame:
    return read_parquet(work_uri, columns=["doc_id", "dedup_key", *bands])


def _finalize(work_uri: str, name: str, drops: dict, stage_uri: str, cfg) -> list[dict]:
    df = read_parquet(work_uri)
    stats = []
    for step in GLOBAL_STEPS:
        reasons = pd.Series([None] * len(df), index=df.index, dtype=object)
        dup_of = pd.Series([None] * len(df), index=df.index, dtype=object)
        for row, (s, reason, of) in drops.items():
            if s == step and row in df.index:
                reasons[row], dup_of[row] = reason, of
        stats.append(_stat(step, df, reasons))
        mask = reasons.notna()
        if mask.any():
            write_parquet(df[mask].assign(duplicate_of=dup_of[mask], reject_step=step, reject_reason=reasons[mask]),
                          join(_step_dir(stage_uri, step, cfg), f"{name}.parquet"))
        df = df[~mask]
    df = df.drop(columns=["dedup_key", *_band_columns(cfg)])
    write_parquet(df.reset_index(drop=True), join(stage_uri, "data", f"{name}.parquet"))
    return stats


def _choose_drops(keys: list[pd.DataFrame], cfg) -> list[dict]:
    """Per partition {row: (step, reason, survivor doc_id)}; deterministic whatever the partitioning."""
    from tasks.minhash import clusters

    frames = [k.assign(part=i, row=range(len(k))) for i, k in enumerate(keys)]
    allk = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["doc_id", "dedup_key", "part", "row"])
    drops: list[dict] = [{} for _ in keys]

    def mark(rows: pd.DataFrame, survivors, step: str, reason: str) -> None:
        for part, row, s in zip(rows["part"], rows["row"], survivors):
            drops[part][row] = (step, reason, s)

    dup_id = allk.duplicated("doc_id", keep="first")
    mark(allk[dup_id], allk[dup_id]["doc_id"], "duplicate_id", "duplicate_doc_id")
    rest = allk[~dup_id]
    if cfg.exact_dedup:
        survivor = rest.groupby("dedup_key")["doc_id"].transform("min")
        lost = rest["doc_id"] != survivor
        mark(rest[lost], survivor[lost], "exact_dedup", "exact_duplicate")
        rest = rest[~lost]
    if cfg.near_dedup and len(rest):
        survivor = clusters(rest["doc_id"].reset_index(drop=True), rest[_band_columns(cfg)].to_numpy())
        lost = rest["doc_id"].to_numpy() != survivor
        mark(rest[lost], survivor[lost], "near_dedup", "near_duplicate")
    return drops


def _merge(stats_lists: list[list[dict]]) -> list[dict]:
    merged: dict[str, dict] = {}
    for stats in stats_lists:
        for s in stats:
            m = merged.setdefault(s["step"], {"step": s["step"], "in": 0, "kept": 0, "bytes_in": 0, "rejected": Counter()})
            m["in"] += s["in"]
            m["kept"] += s["kept"]
            m["bytes_in"] += s["bytes_in"]
            m["rejected"].update(s["rejected"])
    return [{**m, "rejected": dict(m["rejected"])} for m in merged.values()]


def curate(ingest_docs_uri: str, stage: StageDir, cluster: Cluster, cfg) -> dict:
    parts = list_parts(ingest_docs_uri)
    names = [f"part-{i:05d}" for i in range(len(parts))]
    validate_steps(cfg.steps)
    local_stats = cluster.map(_local, parts, names, stage_uri=stage.uri, cfg=cfg, progress="curate: rules",
                              cost=part_sizes(parts))
    works = [join(stage.uri, "_work", f"{n}.parquet") for n in names]
    drops = _choose_drops(cluster.map(_keys, works, bands=_band_columns(cfg)), cfg)
    global_stats = cluster.map(_finalize, works, names, drops, stage_uri=stage.uri, cfg=cfg, progress="curate: dedup")
    funnel = _merge(local_stats) + _merge(global_stats)
    prev_kept = None
    for s in funnel:  # conservation per step, and each step consumes exactly what the previous kept
        assert s["in"] == s["kept"] + sum(s["rejected"].values()), f"conservation violated in {s['step']}"
        assert prev_kept is None or s["in"] == prev_kept, f"rows lost between steps before {s['step']}"
        prev_kept = s["kept"]
    from tasks.storage import url_to_fs

    fs, work_path = url_to_fs(join(stage.uri, "_work"))
    fs.rm(work_path, recursive=True)
    total_in = funnel[0]["in"] if funnel else 0
    kept = funnel[-1]["kept"] if funnel else 0
    by_reason = sum((Counter(s["rejected"]) for s in funnel), Counter())
    return {"counts": {"in": total_in, "kept": kept, "rejected": total_in - kept},
            "funnel": funnel, "rejected_by_reason": dict(by_reason), "partitions": len(parts)}
