"""Encoding curated partitions into megatron-core indexed datasets (.bin/.idx) per (source, split), and merging
the per-partition shards. Runs on the Dask workers."""
from __future__ import annotations

import hashlib
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.cluster import read_parquet, write_parquet
from tasks.core.storage import is_remote, join, url_to_fs
from tasks.tokenize.bpe import encode_texts, fast_encoder, load_tokenizer
from tasks.tokenize.ledger import REJECTED, piece

SPLITS = ("train", "valid", "test")


def split_of(doc_id: str, valid_per_mille: int, test_per_mille: int) -> str:
    bucket = int(hashlib.sha256(doc_id.encode()).hexdigest()[:8], 16) % 1000
    if bucket < valid_per_mille:
        return "valid"
    if bucket < valid_per_mille + test_per_mille:
        return "test"
    return "train"


def heldout_docs(uri: str, valid: int, test: int) -> list[tuple[str, str, str]]:
    """(doc_id, source_id, text) of the partition's test-split documents."""
    df = read_parquet(uri, columns=["doc_id", "source_id", "text"])
    keep = [split_of(d, valid, test) == "test" for d in df["doc_id"]]
    return list(df[keep].itertuples(index=False, name=None))


@lru_cache(maxsize=4)
def _worker_tokenizer(uri: str):
    """Tokenizer and its fast encoder, loaded once per worker process."""
    tok = load_tokenizer(uri)
    return tok, fast_encoder(tok)


def _dtype(vocab_size: int):
    return np.uint16 if vocab_size < 65500 else np.int32


class _LocalOut:
    """Build files in a local folder; upload to the object store on exit when the target is remote."""

    def __init__(self, target_dir: str):
        self.target = target_dir
        self.tmp = tempfile.mkdtemp(prefix="keel-tok-") if is_remote(target_dir) else None
        self.dir = self.tmp or target_dir
        Path(self.dir).mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> str:
        return str(Path(self.dir) / name)

    def finish(self) -> None:
        if self.tmp:
            fs, path = url_to_fs(self.target)
            for f in Path(self.tmp).iterdir():
                fs.put_file(str(f), f"{path}/{f.name}")


def encode_part(uri: str, name: str, tok_uri: str, eod: int, vocab: int, shards_uri: str, pieces_uri: str,
                valid: int, test: int, exclude: dict[str, str] | None = None, rejects_uri: str = "") -> dict:
    """Encode one curated partition into shards per (source, split), and write its ledger rows to
    `pieces_uri`/<name>.parquet. Documents in `exclude` (doc_id -> reason) are not encoded: they go, with their
    reason, to `rejects_uri`/<name>.parquet. Returns per-group counts only."""
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    tok, fast = _worker_tokenizer(tok_uri)
    df = read_parquet(uri)
    rejected: dict[str, int] = {}
    pieces = []
    if exclude:
        drop = df["doc_id"].isin(exclude.keys())
        if drop.any():
            gone = df[drop].assign(reject_step="decontaminate", reject_reason=df.loc[drop, "doc_id"].map(exclude))
            write_parquet(gone, join(rejects_uri, f"{name}.parquet"))
            rejected = {str(k): int(v) for k, v in gone["reject_reason"].value_counts().items()}
            pieces.append(piece(gone, [REJECTED] * len(gone), [0] * len(gone), gone["reject_reason"].tolist()))
            df = df[~drop]
    df = df.assign(split=[split_of(d, valid, test) for d in df["doc_id"]])
    out = []
    for (source, split), g in df.groupby(["source_id", "split"], sort=True):
        enc, engine = encode_texts(tok, g["text"].tolist(), fast)
        local = _LocalOut(join(shards_uri, source, split))
        builder = IndexedDatasetBuilder(local.path(f"{name}.bin"), dtype=_dtype(vocab))
        lengths = []
        for e in enc:
            ids = np.asarray(e + [eod], dtype=np.int64)
            builder.add_document(torch.from_numpy(ids), [len(ids)])
            lengths.append(len(ids))
        builder.finalize(local.path(f"{name}.idx"))
        local.finish()
        pieces.append(piece(g, [split] * len(g), lengths, [""] * len(g)))
        out.append({"source_id": source, "split": split, "shard": join(shards_uri, source, split, name),
                    "num_docs": len(g), "num_tokens": int(sum(lengths)),
                    "num_words": int(sum(len(t.split()) for t in g["text"])),
                    "max_token_id": int(max((max(e, default=0) for e in enc), default=0)), "engine": engine})
    if pieces:
        write_parquet(pd.concat(pieces, ignore_index=True), join(pieces_uri, f"{name}.parquet"))
    return {"groups": out, "rejected": rejected}


def _add_shard(builder, prefix: str) -> None:
    """megatron's `IndexedDatasetBuilder.add_index` without its per-shard `gc.collect()` (seconds per call in
    a worker with a large heap): extend the index, stream-copy the tokens."""
    import shutil

    from megatron.core.datasets.indexed_dataset import _IndexReader

    index = _IndexReader(prefix + ".idx", multimodal=False)
    assert index.dtype == builder.dtype
    offset = len(builder.sequence_lengths)
    builder.sequence_lengths.extend(index.sequence_lengths.tolist())
    builder.document_indices.extend((offset + index.document_indices)[1:].tolist())
    with open(prefix + ".bin", "rb") as f:
        shutil.copyfileobj(f, builder.data_file, 1 << 24)


def merge_shards(shards: list[str], target_prefix: str, vocab: int) -> str:
    import torch  # noqa: F401  (megatron's builder writes through torch tensors)
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    target_dir, name = target_prefix.rsplit("/", 1)
    local = _LocalOut(target_dir)
    tmpdir = tempfile.mkdtemp(prefix="keel-merge-") if any(is_remote(s) for s in shards) else None
    builder = IndexedDatasetBuilder(local.path(f"{name}.bin"), dtype=_dtype(vocab))
    for s in shards:
        if tmpdir:  # shards on an object store: fetch them next to the builder
            fs, path = url_to_fs(s)
            for ext in (".bin", ".idx"):
                fs.get_file(path + ext, f"{tmpdir}/shard{ext}")
            _add_shard(builder, f"{tmpdir}/shard")
        else:
            _add_shard(builder, s)
    builder.finalize(local.path(f"{name}.idx"))
    local.finish()
    return target_prefix
