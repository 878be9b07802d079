"""Global dedup steps of curation, run on the cluster: duplicate ids, exact duplicates (normalised-text hash) and
MinHash near duplicates. No process ever holds more than one shard of the keys: the driver only sees counts.

Every surviving row of the rules is a node, `partition << 32 | row`. Keys are shuffled through files under the
stage's `_dedup/` folder (one file per source partition and target shard), as datatrove and NeMo Curator shard
their buckets:

1. ids: rows by hash(doc_id); per shard, every row but the first (partition, row) of a doc_id is a `duplicate_id`.
2. keys: the other rows by hash(dedup_key) and, one row per band, by bucket key; per shard, an exact group keeps its
   smallest doc_id (`exact_dedup`), and each LSH bucket of two or more rows links its rows to the row with the
   smallest doc_id (star edges), written by hash(node).
3. components: min-label propagation over those edges, shard by shard: a node's label is the smallest doc_id it has
   heard of; only nodes whose label changed send it on; it stops when no message is sent (as many rounds as the
   widest component is deep). A node whose label is not its own doc_id is a `near_dedup` of that label.
4. each partition reads the losers written for it and writes its kept rows and rejects.

The survivors are those of a single-process pass (tests/tasks/curate/dedup_reference.py): exact duplicates share
every band key, so linking them as near duplicates changes no component and no component's smallest doc_id.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.core.cluster import list_parts, read_parquet, write_parquet
from tasks.core.shuffle import empty, gather as _gather, scatter as _scatter, shard_of as _shard
from tasks.core.storage import join, remove_tree
from tasks.curate.config import DedupConfig

ROW_BITS = 32
ROW_MASK = (1 << ROW_BITS) - 1


def dedup_key(text: str) -> str:
    """Exact-duplicate key: hash of the lower-cased text with whitespace collapsed."""
    return hashlib.sha1(" ".join(text.lower().split()).encode("utf-8", "surrogatepass")).hexdigest()


def band_columns(cfg: DedupConfig) -> list[str]:
    return [f"lsh_{b:02d}" for b in range(cfg.bands)] if cfg.near else []


@dataclass(frozen=True)
class Plan:
    root: str
    """The stage's `_dedup/` folder (local or object store)."""
    shards: int
    exact: bool
    near: bool
    bands: tuple[str, ...]


def plan(stage_uri: str, partitions: int, cfg: DedupConfig, rows: int | None = None) -> Plan:
    """The shuffle's folder and shards: `cfg.shards`, else one per `cfg.rows_per_shard` of the `rows` that reach
    dedup (at most one per partition), else (rows unknown) one per partition."""
    shards = cfg.shards or max(1, partitions if rows is None else
                               min(partitions, -(-rows // max(1, cfg.rows_per_shard))))
    return Plan(join(stage_uri, "_dedup"), shards, cfg.exact, cfg.near, tuple(band_columns(cfg)))


def nodes(part: int, rows: int) -> np.ndarray:
    return (np.int64(part) << ROW_BITS) | np.arange(rows, dtype=np.int64)


def _to_partitions(lost: pd.DataFrame, folder: str, name: str) -> None:
    """Losers (node, survivor) back to the partitions they came from: `folder/pNNNNN/name.parquet` (row, survivor)."""
    if not len(lost):
        return
    part = (lost["node"].to_numpy() >> ROW_BITS).astype(np.int64)
    rows = pd.DataFrame({"row": lost["node"].to_numpy() & ROW_MASK, "survivor": lost["survivor"].to_numpy()})
    for p, g in rows.groupby(part, sort=False):
        write_parquet(g.reset_index(drop=True), join(folder, f"p{int(p):05d}", f"{name}.parquet"))


IDS = {"node": "int64", "doc_id": "object"}


def scatter_ids(part: int, work_uri: str, p: Plan) -> int:
    ids = read_parquet(work_uri, columns=["doc_id"])["doc_id"]
    frame = pd.DataFrame({"node": nodes(part, len(ids)), "doc_id": ids.to_numpy()})
    _scatter(frame, _shard(frame["doc_id"], p.shards), join(p.root, "ids"), f"p{part:05d}")
    return len(frame)


def duplicate_ids(shard: int, p: Plan) -> int:
    """Rows of a doc_id after its first (partition, row): `duplicate_id` of that doc_id."""
    df = _gather(join(p.root, "ids", f"s{shard:05d}"), IDS)
    first = df.groupby("doc_id")["node"].transform("min")
    lost = df[df["node"] != first].rename(columns={"doc_id": "survivor"})
    _to_partitions(lost, join(p.root, "lost", "duplicate_id"), f"s{shard:05d}")
    return len(lost)


def lost_rows(p: Plan, step: str, part: int) -> pd.DataFrame:
    """(row, survivor) of one partition's losers of a step."""
    return _gather(join(p.root, "lost", step, f"p{part:05d}"), {"row": "int64", "survivor": "object"})


def scatter_keys(part: int, work_uri: str, p: Plan) -> int:
    """The rows that are not duplicate ids: by exact key, and one row per band by bucket key."""
    df = read_parquet(work_uri, columns=["doc_id", "dedup_key", *p.bands])
    df.insert(0, "node", nodes(part, len(df)))
    df = df[~df.index.isin(lost_rows(p, "duplicate_id", part)["row"])]
    name = f"p{part:05d}"
    if p.exact:
        exact = df[["node", "doc_id", "dedup_key"]]
        _scatter(exact, _shard(exact["dedup_key"], p.shards), join(p.root, "exact"), name)
    if p.near and len(df):
        long = pd.DataFrame({
            "node": np.tile(df["node"].to_numpy(), len(p.bands)),
            "doc_id": np.tile(df["doc_id"].to_numpy(), len(p.bands)),
            "band": np.repeat(np.arange(len(p.bands), dtype=np.int16), len(df)),
            "key": np.concatenate([df[b].to_numpy(dtype=np.uint64) for b in p.bands]),
        })
        _scatter(long, (long["key"].to_numpy() % np.uint64(p.shards)).astype(np.int64), join(p.root, "bands"), name)
    return len(df)


EXACT = {"node": "int64", "doc_id": "object", "dedup_key": "object"}
BANDS = {"node": "int64", "doc_id": "object", "band": "int16", "key": "uint64"}
ADJ = {"node": "int64", "doc_id": "object", "nbr": "int64", "nbr_doc": "object"}


def shard_keys(shard: int, p: Plan) -> dict:
    """One shard of keys: exact losers back to their partitions; LSH buckets as star edges to the node shards."""
    name = f"s{shard:05d}"
    exact_lost = 0
    if p.exact:
        df = _gather(join(p.root, "exact", name), EXACT)
        smallest = df.groupby("dedup_key")["doc_id"].transform("min")
        lost = df.loc[df["doc_id"] != smallest, ["node"]].assign(survivor=smallest[df["doc_id"] != smallest])
        _to_partitions(lost, join(p.root, "lost", "exact_dedup"), name)
        exact_lost = len(lost)
    edges = 0
    if p.near:
        df = _gather(join(p.root, "bands", name), BANDS).sort_values(["band", "key", "doc_id"], kind="stable")
        bucket = df.groupby(["band", "key"], sort=False)
        df = df[bucket["node"].transform("size").to_numpy() >= 2]
        bucket = df.groupby(["band", "key"], sort=False)
        center, center_doc = bucket["node"].transform("first"), bucket["doc_id"].transform("first")
        arm = df["node"] != center
        u, v = df.loc[arm, ["node", "doc_id"]], pd.DataFrame({"node": center[arm], "doc_id": center_doc[arm]})
        adj = pd.concat([
            pd.DataFrame({"node": u["node"].to_numpy(), "doc_id": u["doc_id"].to_numpy(),
                          "nbr": v["node"].to_numpy(), "nbr_doc": v["doc_id"].to_numpy()}),
            pd.DataFrame({"node": v["node"].to_numpy(), "doc_id": v["doc_id"].to_numpy(),
                          "nbr": u["node"].to_numpy(), "nbr_doc": u["doc_id"].to_numpy()}),
        ], ignore_index=True).drop_duplicates(["node", "nbr"])
        _scatter(adj, _shard(adj["node"], p.shards), join(p.root, "adj"), name)
        edges = len(adj)
    return {"exact_lost": exact_lost, "edges": edges}


STATE = {"node": "int64", "doc_id": "object", "label": "object"}
MSG = {"node": "int64", "label": "object"}


def _send(p: Plan, state: pd.DataFrame, changed: np.ndarray, adj: pd.DataFrame, round_: int, shard: int) -> int:
    """Each changed node's label to its neighbours, by the neighbours' shard; the number of messages."""
    moved = state.loc[changed, ["node", "label"]]
    if not len(moved):
        return 0
    msg = adj.merge(moved, on="node")[["nbr", "label"]].groupby("nbr", as_index=False)["label"].min()
    msg = msg.rename(columns={"nbr": "node"})
    _scatter(msg, _shard(msg["node"], p.shards), join(p.root, "cc", f"msg{round_:04d}"), f"s{shard:05d}")
    return len(msg)


def components_start(shard: int, p: Plan) -> int:
    """A shard's nodes with their neighbours' doc_ids already heard: label = smallest doc_id among them."""
    name = f"s{shard:05d}"
    adj = _gather(join(p.root, "adj", name), ADJ)
    state = adj.groupby("node", as_index=False).agg(doc_id=("doc_id", "first"), heard=("nbr_doc", "min"))
    doc, heard = state["doc_id"].to_numpy(dtype=object), state.pop("heard").to_numpy(dtype=object)
    state["label"] = np.where(heard < doc, heard, doc)
    links = adj[["node", "nbr"]].drop_duplicates()
    write_parquet(links, join(p.root, "cc", "adj", f"{name}.parquet"))
    write_parquet(state, join(p.root, "cc", "state0000", f"{name}.parquet"))
    return _send(p, state, (state["label"] != state["doc_id"]).to_numpy(), links, 1, shard)


def _read_or_empty(uri: str, columns: dict[str, str]) -> pd.DataFrame:
    parts = list_parts(uri)
    return read_parquet(parts[0]) if parts else empty(columns)


def components_round(shard: int, p: Plan, round_: int) -> int:
    """One round of label propagation on a shard: the smallest label heard; changed labels sent on."""
    name = f"s{shard:05d}"
    state = _read_or_empty(join(p.root, "cc", f"state{round_ - 1:04d}", f"{name}.parquet"), STATE)
    heard = _gather(join(p.root, "cc", f"msg{round_:04d}", name), MSG).groupby("node")["label"].min()
    new = state["node"].map(heard).to_numpy(dtype=object)
    label = state["label"].to_numpy(dtype=object)
    has = pd.notna(new)
    changed = np.zeros(len(state), dtype=bool)
    changed[has] = new[has] < label[has]
    state["label"] = np.where(changed, new, label)
    write_parquet(state, join(p.root, "cc", f"state{round_:04d}", f"{name}.parquet"))
    links = _read_or_empty(join(p.root, "cc", "adj", f"{name}.parquet"), {"node": "int64", "nbr": "int64"})
    return _send(p, state, changed, links, round_ + 1, shard)


def near_losers(shard: int, p: Plan, round_: int) -> int:
    name = f"s{shard:05d}"
    state = _read_or_empty(join(p.root, "cc", f"state{round_:04d}", f"{name}.parquet"), STATE)
    lost = state.loc[state["label"] != state["doc_id"], ["node", "label"]].rename(columns={"label": "survivor"})
    _to_partitions(lost, join(p.root, "lost", "near_dedup"), name)
    return len(lost)


def run_dedup(cluster, p: Plan, works: list[str], log=None) -> dict:
    """All dedup shuffles on the cluster (`cluster.map`); the losers are left under `p.root/lost/` for each
    partition (`lost_rows`). Returns counts only."""
    parts, shards = list(range(len(works))), list(range(p.shards))
    remove_tree(p.root)  # a re-run after a crash starts from nothing
    cluster.map(scatter_ids, parts, works, p=p, progress="dedup: ids")
    counts = {"duplicate_id": sum(cluster.map(duplicate_ids, shards, p=p))}
    if not (p.exact or p.near):
        return counts
    cluster.map(scatter_keys, parts, works, p=p, progress="dedup: keys")
    keyed = cluster.map(shard_keys, shards, p=p, progress="dedup: buckets")
    counts["exact_dedup"] = sum(k["exact_lost"] for k in keyed)
    counts["edges"] = sum(k["edges"] for k in keyed)
    if not p.near:
        return counts
    sent, round_ = sum(cluster.map(components_start, shards, p=p)), 0
    while sent:
        round_ += 1
        sent = sum(cluster.map(components_round, shards, p=p, round_=round_))
        remove_tree(join(p.root, "cc", f"state{round_ - 1:04d}"))
        remove_tree(join(p.root, "cc", f"msg{round_:04d}"))
    counts["rounds"] = round_
    counts["near_dedup_labelled"] = sum(cluster.map(near_losers, shards, p=p, round_=round_))
    if log:
        log(f"dedup: {p.shards} shards, {counts['edges']} bucket links, components in {round_} rounds")
    return counts


STEPS = ("duplicate_id", "exact_dedup", "near_dedup")
REASONS = {"duplicate_id": "duplicate_doc_id", "exact_dedup": "exact_duplicate", "near_dedup": "near_duplicate"}


def partition_drops(p: Plan, part: int) -> dict[int, tuple[str, str, str]]:
    """{row: (step, reason, survivor doc_id)} for one partition; a row lost to an earlier step stays with it."""
    drops: dict[int, tuple[str, str, str]] = {}
    for step in STEPS:
        lost = lost_rows(p, step, part)
        for row, survivor in zip(lost["row"].tolist(), lost["survivor"].tolist()):
            drops.setdefault(int(row), (step, REASONS[step], survivor))
    return drops
