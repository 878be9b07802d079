"""Tokenization: a byte-level BPE (HF `tokenizers`) and megatron-core indexed datasets per source and split.

1. Train the tokenizer on a deterministic sample of curated text (or load one from a tokenizer.json).
2. One Dask task per curated partition encodes documents (EOD appended) into shard .bin/.idx files written
   with megatron-core's IndexedDatasetBuilder, grouped by (source, split); the split is a function of the
   document hash, so it is stable across runs.
3. One Dask task per (source, split) concatenates its shards into one dataset with `add_index`.
4. manifest.json lists datasets with token counts; doc_index.parquet maps (dataset, position) -> doc_id.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.cluster import Cluster, read_parquet, write_parquet
from tasks.storage import is_remote, join, url_to_fs

EOD = "<|endoftext|>"
SPLITS = ("train", "valid", "test")


def split_of(doc_id: str, valid_per_mille: int, test_per_mille: int) -> str:
    bucket = int(hashlib.sha256(doc_id.encode()).hexdigest()[:8], 16) % 1000
    if bucket < valid_per_mille:
        return "valid"
    if bucket < valid_per_mille + test_per_mille:
        return "test"
    return "train"


def train_tokenizer(parts: list[str], vocab_size: int, sample_bytes: int, out_path: str) -> dict:
    """Train a byte-level BPE on up to `sample_bytes` of text, docs taken in doc-hash order (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    frames = [read_parquet(p, columns=["doc_id", "text"]) for p in parts]
    docs = pd.concat(frames, ignore_index=True).sort_values("doc_id") if frames else pd.DataFrame(columns=["doc_id", "text"])
    sizes = docs["text"].str.len().cumsum()
    sample = docs["text"][sizes <= max(sample_bytes, int(sizes.iloc[0]) if len(sizes) else 0)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(sample.tolist(), trainer=trainer, length=len(sample))
    blob = tok.to_str().encode()
    fs, path = url_to_fs(out_path)
    fs.pipe_file(path, blob)
    return {"path": out_path, "sha256": hashlib.sha256(blob).hexdigest(), "vocab_size": tok.get_vocab_size(),
            "eod": tok.token_to_id(EOD), "sample_docs": int(len(sample)), "sample_chars": int(sample.str.len().sum())}


@lru_cache(maxsize=4)
def _worker_tokenizer(uri: str):
    """Tokenizer and its fast encoder, loaded once per worker process."""
    tok = load_tokenizer(uri)
    return tok, fast_encoder(tok)


def load_tokenizer(uri: str):
    from tokenizers import Tokenizer

    fs, path = url_to_fs(uri)
    with fs.open(path, "rb") as f:
        return Tokenizer.from_str(f.read().decode())


GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map, the alphabet of byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def fast_encoder(tok):
    """A tiktoken Encoding with the same merges as a byte-level BPE trained here, or None.

    A byte-level BPE's vocabulary, mapped back to bytes, is a tiktoken rank table when ids follow merge order
    (true for tokenizers trained by `tokenizers`' BpeTrainer); the GPT-2 split pattern is the ByteLevel
    pre-tokenizer's. tiktoken encodes the same ids several times faster. Callers verify on a sample.
    """
    import tiktoken

    dec = {c: b for b, c in _bytes_to_unicode().items()}
    try:
        ranks = {bytes(dec[ch] for ch in t): i for t, i in tok.get_vocab().items() if t != EOD}
    except KeyError:  # not a byte-level vocabulary
        return None
    if sorted(ranks.values()) != sorted(set(ranks.values())):
        return None
    return tiktoken.Encoding(name="keel-bpe", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={EOD: tok.token_to_id(EOD)})


def encode_texts(tok, texts: list[str], fast=None, verify: int = 32) -> tuple[list[list[int]], str]:
    """Token ids per text: tiktoken when it agrees with the HF tokenizer on the first `verify` texts."""
    if fast is not None:
        ids = fast.encode_ordinary_batch(texts, num_threads=1)
        sample = [e.ids for e in tok.encode_batch_fast(texts[:verify])]
        if sample == ids[:verify]:
            return ids, "tiktoken"
    return [e.ids for e in tok.encode_batch_fast(texts)], "hf"


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


def _encode_part(uri: str, name: str, tok_uri: str, eod: int, vocab: int, shards_uri: str,
                 valid: int, test: int) -> list[dict]:
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    tok, fast = _worker_tokenizer(tok_uri)
    df = read_parquet(uri, columns=["doc_id", "source_id", "text"])
    df["split"] = [split_of(d, valid, test) for d in df["doc_id"]]
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
        out.append({"source_id": source, "split": split, "shard": join(shards_uri, source, split, name),
                    "doc_ids": g["doc_id"].tolist(), "num_tokens": lengths,
                    "num_words": int(sum(len(t.split()) for t in g["text"])),
                    "max_token_id": int(max((max(e, default=0) for e in enc), default=0)), "engine": engine})
    return out


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


def _merge(shards: list[str], target_prefix: str, vocab: int) -> str:
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


def tokenize(curated_parts: list[str], stage_uri: str, cluster: Cluster, cfg, domains: dict[str, str],
             licenses: dict[str, str]) -> dict:
    if not is_remote(stage_uri):
        Path(stage_uri).mkdir(parents=True, exist_ok=True)
    tok_uri = join(stage_uri, "tokenizer.json")
    if cfg.tokenizer_path:
        fs, path = url_to_fs(cfg.tokenizer_path)
        blob = fs.cat_file(path)
        url_to_fs(tok_uri)[0].pipe_file(url_to_fs(tok_uri)[1], blob)
        t = load_tokenizer(tok_uri)
        if t.token_to_id(EOD) is None:
            raise ValueError(f"tokenizer {cfg.tokenizer_path} has no {EOD} token; add it as a special token")
        tok_info = {"path": tok_uri, "sha256": hashlib.sha256(blob).hexdigest(), "vocab_size": t.get_vocab_size(),
                    "eod": t.token_to_id(EOD), "loaded_from": cfg.tokenizer_path}
    else:
        tok_info = cluster.map(train_tokenizer, [curated_parts], vocab_size=cfg.vocab_size,
                               sample_bytes=cfg.sample_bytes, out_path=tok_uri)[0]
    vocab, eod = tok_info["vocab_size"], tok_info["eod"]
    names = [f"part-{i:05d}" for i in range(len(curated_parts))]
    shards_uri = join(stage_uri, "shards")
    encoded = cluster.map(_encode_part, curated_parts, names, tok_uri=tok_uri, eod=eod, vocab=vocab,
                          shards_uri=shards_uri, valid=cfg.valid_per_mille, test=cfg.test_per_mille,
                          progress="tokenize: encode")
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for part in encoded:
        for g in part:
            groups[(g["source_id"], g["split"])].append(g)
    keys = sorted(groups)
    prefixes = [join(stage_uri, "datasets", f"{s}_{sp}") for s, sp in keys]
    cluster.map(_merge, [[g["shard"] for g in groups[k]] for k in keys], prefixes, vocab=vocab)
    datasets, index_rows = [], []
    for (source, split), prefix in zip(keys, prefixes):
        pos = 0
        n_tokens = 0
        n_words = sum(g["num_words"] for g in groups[(source, split)])
        max_id = max(max(g["max_token_id"] for g in groups[(source, split)]), eod)
        for g in groups[(source, split)]:
            for d, n in zip(g["doc_ids"], g["num_tokens"]):
                index_rows.append((d, source, split, prefix, pos, n))
                pos += 1
                n_tokens += n
        datasets.append({"source_id": source, "domain": domains[source], "license": licenses[source],
                         "split": split, "prefix": prefix, "num_docs": pos, "num_tokens": n_tokens,
                         "num_words": n_words, "max_token_id": max_id})
    fs, shards_path = url_to_fs(shards_uri)
    fs.rm(shards_path, recursive=True)
    doc_index = pd.DataFrame(index_rows, columns=["doc_id", "source_id", "split", "dataset", "position", "num_tokens"])
    write_parquet(doc_index, join(stage_uri, "doc_index.parquet"))
    engines = sorted({g["engine"] for part in encoded for g in part})
    manifest = {"tokenizer": tok_info, "eod": eod, "vocab_size": vocab, "datasets": datasets, "encoders": engines,
                "doc_index": join(stage_uri, "doc_index.parquet"),
                "tokens_by_split": {sp: sum(d["num_tokens"] for d in datasets if d["split"] == sp) for sp in SPLITS}}
    fs, mpath = url_to_fs(join(stage_uri, "manifest.json"))
    fs.pipe_file(mpath, json.dumps(manifest, indent=1).encode())
    return manifest
