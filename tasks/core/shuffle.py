"""Shuffles through files, for work that must meet every row with the same key without one process holding all
keys (dedup, global uniqueness): each source task writes its rows for target shard s to `folder/sNNNNN/<name>`,
then one task per shard reads that folder. Works on local folders and object stores alike."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.core.cluster import list_parts, read_parquet, write_parquet
from tasks.core.storage import join


def shard_of(values, shards: int) -> np.ndarray:
    """Stable shard of each value (the same in every process: pandas' fixed-key hash)."""
    h = pd.util.hash_pandas_object(pd.Series(values), index=False).to_numpy()
    return (h % np.uint64(shards)).astype(np.int64)


def scatter(df: pd.DataFrame, shard: np.ndarray, folder: str, name: str) -> None:
    """Write the rows of each target shard to `folder/sNNNNN/name.parquet` (nothing for shards without rows)."""
    for s, rows in df.groupby(shard, sort=False):
        write_parquet(rows.reset_index(drop=True), join(folder, f"s{int(s):05d}", f"{name}.parquet"))


def empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in columns.items()})


def gather(folder: str, columns: dict[str, str]) -> pd.DataFrame:
    """Every file of one shard's folder, concatenated (an empty frame of `columns` when there is none)."""
    frames = [read_parquet(f) for f in list_parts(folder)]
    return pd.concat(frames, ignore_index=True) if frames else empty(columns)
