"""The tokenizer: a byte-level BPE trained with HF `tokenizers` (or loaded from a tokenizer.json), and an
equivalent tiktoken encoder built from the same merges (several times faster; verified against HF ids)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.core.cluster import read_parquet, write_parquet
from tasks.core.storage import url_to_fs, write_bytes_atomic

EOD = "<|endoftext|>"


@dataclass(frozen=True)
class TokenizerInfo:
    path: str
    """Output-root-relative path of tokenizer.json."""
    sha256: str
    vocab_size: int
    eod: int
    sample_docs: int
    """Documents the tokenizer was trained on (0 when loaded)."""
    sample_chars: int
    loaded_from: str
    """The recipe's tokenizer_path when loaded, else ''."""


def text_bytes(uri: str) -> int:
    """Bytes of a partition's text column, from its Parquet footer (no data read)."""
    import pyarrow.parquet as pq

    fs, path = url_to_fs(uri)
    with fs.open(path, "rb") as f:
        md = pq.ParquetFile(f).metadata
        names = [md.schema.column(i).path for i in range(md.num_columns)]
        if "text" not in names:
            return 0
        col = names.index("text")
        return int(sum(md.row_group(g).column(col).total_uncompressed_size for g in range(md.num_row_groups)))


def _unit(doc_ids: pd.Series) -> np.ndarray:
    """A uniform number in [0, 1) per doc_id, the same in every process."""
    return pd.util.hash_pandas_object(doc_ids, index=False).to_numpy() / float(2**64)


def sample_part(uri: str, out_uri: str, rate: float) -> int:
    """The partition's documents whose doc_id hashes below `rate`, with that hash, to `out_uri`; their bytes."""
    df = read_parquet(uri, columns=["doc_id", "text"])
    u = _unit(df["doc_id"])
    texts = df["text"].to_numpy(dtype=object)[u < rate]
    write_parquet(pd.DataFrame({"u": u[u < rate], "text": pd.Series(texts, dtype=object)}), out_uri)
    return int(sum(len(t) for t in texts))


def sample_rate(part_bytes: list[int], sample_bytes: int) -> float:
    """The hash rate whose expected sample is a little over `sample_bytes` (all of it for a small corpus)."""
    total = sum(part_bytes)
    return 1.0 if total <= sample_bytes else min(1.0, 1.1 * sample_bytes / total)


def train_tokenizer(samples: list[str], vocab_size: int, sample_bytes: int, out_path: str) -> dict:
    """Train a byte-level BPE on up to `sample_bytes` of text: the partitions' samples (`sample_part`), documents
    taken in hash order (deterministic), so the worker holds the sample, not the corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    frames = [f for f in (read_parquet(p) for p in samples) if len(f)]
    docs = pd.concat(frames, ignore_index=True).sort_values("u", kind="stable") if frames else \
        pd.DataFrame({"u": pd.Series([], dtype="float64"), "text": pd.Series([], dtype=object)})
    sizes = docs["text"].map(len).cumsum()
    sample = docs["text"][sizes <= max(sample_bytes, int(sizes.iloc[0]) if len(sizes) else 0)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(sample.tolist(), trainer=trainer, length=len(sample))
    blob = tok.to_str().encode()
    write_bytes_atomic(out_path, blob)
    return {"path": out_path, "sha256": hashlib.sha256(blob).hexdigest(), "vocab_size": tok.get_vocab_size(),
            "eod": tok.token_to_id(EOD), "sample_docs": int(len(sample)), "sample_chars": int(sample.map(len).sum())}


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
