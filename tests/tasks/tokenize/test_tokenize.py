"""Tokenizer + megatron indexed datasets: round trip, EOD, split stability."""
from pathlib import Path

import numpy as np
import pandas as pd
from megatron.core.datasets.indexed_dataset import IndexedDataset

from tasks.core.cluster import Cluster
from tasks.core.stage import Counts
from tasks.curate.stage import CurateResult
from tasks.ingest.readers import doc_id
from tasks.tokenize import stage as tokenize
from tasks.tokenize.bpe import EOD, load_tokenizer
from tasks.tokenize.config import TokenizeConfig
from tasks.tokenize.shards import split_of
from tests.conftest import approve, run_direct

TEXTS = ["Buffer overflows let an attacker overwrite adjacent memory. Ünïcödé too: 東京 ✓",
         "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer"] * 40


def test_split_is_a_stable_function_of_the_doc_hash():
    ids = [doc_id("s", str(i)) for i in range(5000)]
    splits = [split_of(d, 20, 30) for d in ids]
    assert splits == [split_of(d, 20, 30) for d in ids]
    frac = {s: splits.count(s) / len(ids) for s in ("train", "valid", "test")}
    assert abs(frac["valid"] - 0.02) < 0.01 and abs(frac["test"] - 0.03) < 0.01


def test_round_trip_text_ids_bin_idx_text(tmp_path, demo_corpus):
    df = pd.DataFrame({"doc_id": [doc_id("mitre_cwe", str(i)) for i in range(len(TEXTS))], "source_id": "mitre_cwe",
                       "text": [f"{t} #{i}" for i, t in enumerate(TEXTS)], "license": "MIT", "content_sha256": "x"})
    (tmp_path / "curate" / "c" / "data").mkdir(parents=True)
    df.to_parquet(tmp_path / "curate" / "c" / "data" / "part-0.parquet")
    curated = CurateResult(data="curate/c/data", counts=Counts(len(df), len(df), 0), funnel=(), rejected_by_reason={},
                           partitions=1, funnel_chart="", steps=("normalize",))
    sources = tuple(m.data() for m in approve(["mitre_cwe"], demo_corpus).sources)
    cluster = Cluster(n_workers=1)
    try:
        m, out = run_direct(tokenize.STAGE, TokenizeConfig(vocab_size=400, valid_per_mille=100, test_per_mille=100),
                            tokenize.TokenizeInputs(curated, sources), tmp_path, cluster)
    finally:
        cluster.close()
    tok = load_tokenizer(out.at(m.tokenizer.path))
    assert tok.token_to_id(EOD) == m.eod
    index = pd.read_parquet(out.at(m.doc_index))
    assert sorted(index["doc_id"]) == sorted(df["doc_id"]) and sum(d.num_docs for d in m.datasets) == len(df)
    assert {d.domain for d in m.datasets} == {"cybersecurity"} and m.counts == Counts(len(df), len(df), 0)
    texts = dict(zip(df["doc_id"], df["text"]))
    for d in m.datasets:
        ds = IndexedDataset(out.at(d.prefix))  # megatron-core's own reader
        assert len(ds) == d.num_docs and int(ds.sequence_lengths.sum()) == d.num_tokens
        rows = index[index["dataset"] == d.prefix].sort_values("position")
        for pos, did in zip(rows["position"], rows["doc_id"]):
            ids = ds[int(pos)]
            assert ids[-1] == m.eod
            assert tok.decode(ids[:-1].astype(np.int64).tolist()) == texts[did]
    ledger = pd.read_parquet(out.at(m.ledger.path))
    assert len(ledger) == len(df) and set(ledger["verdicts"]) == {"passed:normalize,exact_dedup,near_dedup"}


def test_tiktoken_fast_path_gives_the_hf_ids_on_the_real_corpus(demo_corpus, tmp_path):
    import gzip
    import json

    from tasks.tokenize.bpe import encode_texts, fast_encoder, train_tokenizer

    texts = [json.loads(line)["text"] for sid in ("shakespeare", "mitre_cwe", "python_docs")
             for line in gzip.open(demo_corpus / sid / "part-00000.jsonl.gz", "rt")]
    pd.DataFrame({"u": np.linspace(0, 1, len(texts), endpoint=False), "text": texts}).to_parquet(tmp_path / "p.parquet")
    train_tokenizer([str(tmp_path / "p.parquet")], 2048, 10 ** 7, str(tmp_path / "tok.json"))
    tok = load_tokenizer(str(tmp_path / "tok.json"))
    fast = fast_encoder(tok)
    assert fast is not None
    ids, engine = encode_texts(tok, texts, fast)
    assert engine == "tiktoken"
    assert ids == [e.ids for e in tok.encode_batch(texts)]  # every document, exactly


def test_the_tokenizer_sample_is_drawn_per_partition_and_does_not_depend_on_the_partitioning(tmp_path):
    from tasks.tokenize.bpe import sample_part, sample_rate, text_bytes

    docs = pd.DataFrame({"doc_id": [f"d{i:05d}" for i in range(3000)], "text": [f"text number {i} " * 20 for i in range(3000)]})
    picked = {}
    for n in (1, 3, 7):
        parts = []
        for i, rows in enumerate(np.array_split(np.arange(len(docs)), n)):
            chunk = docs.iloc[rows]
            parts.append(str(tmp_path / f"{n}" / f"p{i}.parquet"))
            Path(parts[-1]).parent.mkdir(exist_ok=True)
            chunk.to_parquet(parts[-1])
        sizes = [text_bytes(p) for p in parts]
        assert sum(sizes) >= docs["text"].str.len().sum()  # the footer's count covers the text
        assert 0.2 < sample_rate(sizes, 200_000) < 0.5
        rate = 0.3  # the footer's byte count varies a little with the partitioning; the draw given a rate does not
        got = sum(sample_part(p, str(tmp_path / f"{n}" / f"s{i}.parquet"), rate) for i, p in enumerate(parts))
        picked[n] = sorted(pd.concat([pd.read_parquet(tmp_path / f"{n}" / f"s{i}.parquet") for i in range(n)])["text"])
        assert 200_000 < got < 300_000
    assert picked[1] == picked[3] == picked[7]
    assert sample_rate([10, 20], 1000) == 1.0
