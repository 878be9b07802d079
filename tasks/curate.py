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

from tasks.cluster import Cluster, list_parts, read_parquet, write_parquet
from tasks.curation import GLOBAL_STEPS, LOCAL_STEPS, dedup_key
from tasks.storage import StageDir, join

STEP_NUMBERS = {name: i for i, name in enumerate([s for s, _ in LOCAL_STEPS] + GLOBAL_STEPS, start=1)}


def _step_dir(stage_uri: str, step: str) -> str:
    return join(stage_uri, "rejects", f"{STEP_NUMBERS[step]:02d}_{step}")


def _stat(step: str, before: pd.DataFrame, reasons: pd.Series) -> dict:
    return {"step": step, "in": len(before), "kept": int(reasons.isna().sum()),
            "bytes_in": int(before["text"].str.len().sum()) if len(before) else 0,
            "rejected": dict(Counter(reasons.dropna()))}


def _local(part_uri: str, name: str, stage_uri: str, cfg) -> list[dict]:
    df = read_parquet(part_uri)
    stats = []
    for step, rule in LOCAL_STEPS:
        res = rule(df, cfg)
        out = res.frame.assign(**res.signals)
        reasons = pd.Series(res.reasons, index=out.index)
        stats.append(_stat(step, df, reasons))
        dropped = out[~res.keep]
        if len(dropped):
            write_parquet(dropped.assign(reject_step=step, reject_reason=reasons[~res.keep].astype(str)),
                          join(_step_dir(stage_uri, step), f"{name}.parquet"))
        df = out[res.keep].reset_index(drop=True)
    df = df.assign(dedup_key=[dedup_key(t) for t in df["text"]])
    write_parquet(df, join(stage_uri, "_work", f"{name}.parquet"))
    return stats


def _keys(work_uri: str) -> pd.DataFrame:
    return read_parquet(work_uri, columns=["doc_id", "dedup_key"])


def _finalize(work_uri: str, name: str, drops: dict, stage_uri: str, exact: bool) -> list[dict]:
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
                          join(_step_dir(stage_uri, step), f"{name}.parquet"))
        df = df[~mask]
    write_parquet(df.drop(columns=["dedup_key"]).reset_index(drop=True), join(stage_uri, "data", f"{name}.parquet"))
    return stats


def _choose_drops(keys: list[pd.DataFrame], exact: bool) -> list[dict]:
    """Per partition {row: (step, reason, survivor doc_id)}; deterministic whatever the partitioning."""
    frames = [k.assign(part=i, row=range(len(k))) for i, k in enumerate(keys)]
    allk = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["doc_id", "dedup_key", "part", "row"])
    drops: list[dict] = [{} for _ in keys]
    dup_id = allk.duplicated("doc_id", keep="first")
    for r in allk[dup_id].itertuples():
        drops[r.part][r.row] = ("duplicate_id", "duplicate_doc_id", r.doc_id)
    if exact:
        rest = allk[~dup_id]
        survivor = rest.groupby("dedup_key")["doc_id"].transform("min")
        for r, s in zip(rest[rest["doc_id"] != survivor].itertuples(), survivor[rest["doc_id"] != survivor]):
            drops[r.part][r.row] = ("exact_dedup", "exact_duplicate", s)
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
    local_stats = cluster.map(_local, parts, names, stage_uri=stage.uri, cfg=cfg)
    works = [join(stage.uri, "_work", f"{n}.parquet") for n in names]
    drops = _choose_drops(cluster.map(_keys, works), cfg.exact_dedup)
    global_stats = cluster.map(_finalize, works, names, drops, stage_uri=stage.uri, exact=cfg.exact_dedup)
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
