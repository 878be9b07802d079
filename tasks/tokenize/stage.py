"""Tokenize stage: a byte-level BPE (HF `tokenizers`) and megatron-core indexed datasets per source and split.

1. Train the tokenizer on a deterministic sample of curated text, drawn per partition on the workers by doc-id
   hash (or load one from a tokenizer.json).
2. One Dask task per curated partition encodes documents (EOD appended) into shard .bin/.idx files written
   with megatron-core's IndexedDatasetBuilder, grouped by (source, split); the split is a function of the
   document hash, so it is stable across runs.
3. One Dask task per (source, split) concatenates its shards into one dataset.
4. doc_index.parquet maps (dataset, position) -> doc_id; ledger.parquet adds provenance and verdicts: each
   encoding task writes its partition's rows, one task streams them into the two files (tasks/tokenize/ledger.py).

Before encoding, the downstream evaluation tasks are built from the test split's documents (evalsets/, see
tasks/evaluate/downstream.py) and training documents sharing a 13-gram with any evaluation item are rejected
(`eval_contamination:<task>`, rejects/eval_contamination/, counted and in the ledger; tasks/tokenize/decontam.py).
"""
from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path


from tasks.core.cluster import list_parts
from tasks.core.stage import Counts, Runtime, StageDef
from tasks.core.storage import StageDir, is_remote, read_bytes, remove_tree, write_bytes_atomic
from tasks.curate.stage import CurateResult
from tasks.evaluate.downstream import HeldoutDoc, TaskSet, build_tasks, item_texts, write_jsonl
from tasks.govern.legal import SourceData
from tasks.tokenize.ledger import LedgerInfo, write_ledger
from tasks.tokenize.bpe import (EOD, TokenizerInfo, load_tokenizer, sample_part, sample_rate, text_bytes,
                                 train_tokenizer)
from tasks.tokenize.config import TokenizeConfig
from tasks.tokenize.decontam import build_index, contaminated, scan_part
from tasks.tokenize.shards import SPLITS, encode_part, heldout_docs, merge_shards


@dataclass(frozen=True)
class TokenizeInputs:
    curated: CurateResult
    sources: tuple[SourceData, ...]
    """For each dataset's domain and licence."""


@dataclass(frozen=True)
class Dataset:
    source_id: str
    domain: str
    license: str
    split: str
    prefix: str
    """Output-root-relative path of the indexed dataset (without .bin/.idx)."""
    num_docs: int
    num_tokens: int
    num_words: int
    max_token_id: int


@dataclass(frozen=True)
class TokenizeResult:
    tokenizer: TokenizerInfo
    datasets: tuple[Dataset, ...]
    doc_index: str
    tokens_by_split: dict[str, int]
    encoders: tuple[str, ...]
    """Which encoders produced the ids ('tiktoken' when it matched HF, else 'hf')."""
    ledger: LedgerInfo
    counts: Counts
    evalsets: tuple[TaskSet, ...] = ()
    """Downstream tasks built from the test split (tasks/evaluate/downstream.py)."""
    decontaminated: dict[str, int] = field(default_factory=dict)
    """Training documents rejected per reason `eval_contamination:<task>`."""

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def eod(self) -> int:
        return self.tokenizer.eod

    def domains(self, split: str = "train") -> set[str]:
        return {d.domain for d in self.datasets if d.split == split and d.num_tokens > 0}


def _tokenizer(cfg: TokenizeConfig, parts: list[str], out: StageDir, rt: Runtime) -> TokenizerInfo:
    tok_uri = out.path("tokenizer.json")
    if cfg.tokenizer_path:
        blob = read_bytes(cfg.tokenizer_path)
        write_bytes_atomic(tok_uri, blob)
        t = load_tokenizer(tok_uri)
        if t.token_to_id(EOD) is None:
            raise ValueError(f"[tokenize].tokenizer_path {cfg.tokenizer_path} has no {EOD} token; add it as a "
                             "special token")
        return TokenizerInfo(path=out.rel("tokenizer.json"), sha256=hashlib.sha256(blob).hexdigest(),
                             vocab_size=t.get_vocab_size(), eod=t.token_to_id(EOD), sample_docs=0, sample_chars=0,
                             loaded_from=cfg.tokenizer_path)
    rate = sample_rate(rt.cluster.map(text_bytes, parts), cfg.sample_bytes)
    samples = [out.path("_sample", f"part-{i:05d}.parquet") for i in range(len(parts))]
    rt.cluster.map(sample_part, parts, samples, rate=rate, progress="tokenize: sample")
    info = rt.cluster.map(train_tokenizer, [samples], vocab_size=cfg.vocab_size, sample_bytes=cfg.sample_bytes,
                          out_path=tok_uri)[0]
    remove_tree(out.path("_sample"))
    return TokenizerInfo(path=out.rel("tokenizer.json"), sha256=info["sha256"], vocab_size=info["vocab_size"],
                         eod=info["eod"], sample_docs=info["sample_docs"], sample_chars=info["sample_chars"],
                         loaded_from="")


def _evalsets(cfg: TokenizeConfig, parts: list[str], domains: dict[str, str], out: StageDir,
              rt: Runtime) -> tuple[tuple[TaskSet, ...], dict[str, str]]:
    """The downstream tasks built from the test split, and the training documents that overlap any evaluation item
    (doc_id -> `eval_contamination:<task>`). `domains`: source id -> domain."""
    docs = [HeldoutDoc(doc, domains[source], text) for part in rt.cluster.map(
        heldout_docs, parts, valid=cfg.valid_per_mille, test=cfg.test_per_mille) for doc, source, text in part]
    built = build_tasks(docs, cfg.eval_task_items, seed=0)
    sets = []
    for name, (domain, kind, items) in built.items():
        blob = write_jsonl(items)
        write_bytes_atomic(out.path("evalsets", f"{name}.jsonl"), blob)
        sets.append(TaskSet(name=name, domain=domain, kind=kind, items=len(items), path=out.rel("evalsets", f"{name}.jsonl"),
                            sha256=hashlib.sha256(blob).hexdigest()))
    if not cfg.decontaminate:
        return tuple(sets), {}
    texts = {name: item_texts(items) for name, (_, _, items) in built.items()}  # tasks first: they name the reason
    for d in docs:
        texts.setdefault(heldout_task(d.domain), []).append(d.text)
    index = build_index(texts, cfg.decontaminate_ngram)
    shared = rt.cluster.share(index)
    scans = rt.cluster.map(scan_part, parts, index=shared, valid=cfg.valid_per_mille, test=cfg.test_per_mille,
                           progress="tokenize: decontaminate")
    found = contaminated(scans, index, cfg.decontaminate_max_doc_frequency)
    if found:
        rt.log(f"tokenize: {len(found)} training documents share a {cfg.decontaminate_ngram}-gram with evaluation "
               f"items, rejected: {dict(Counter(found.values()))}")
    return tuple(sets), found


def heldout_task(domain: str) -> str:
    """The name decontamination gives the held-out documents (the windows perplexity is scored on) of a domain."""
    return "heldout_" + domain


def run(cfg: TokenizeConfig, inputs: TokenizeInputs, out: StageDir, rt: Runtime) -> TokenizeResult:
    if not is_remote(out.uri):
        Path(out.uri).mkdir(parents=True, exist_ok=True)
    parts = list_parts(out.at(inputs.curated.data))
    tok = _tokenizer(cfg, parts, out, rt)
    evalsets, exclude = _evalsets(cfg, parts, {m.id: m.domain for m in inputs.sources}, out, rt)
    names = [f"part-{i:05d}" for i in range(len(parts))]
    encoded = rt.cluster.map(encode_part, parts, names, tok_uri=out.at(tok.path), eod=tok.eod, vocab=tok.vocab_size,
                             shards_uri=out.path("shards"), pieces_uri=out.path("_ledger"),
                             valid=cfg.valid_per_mille, test=cfg.test_per_mille,
                             exclude=rt.cluster.share(exclude) if exclude else None,
                             rejects_uri=out.path("rejects", "eval_contamination"), progress="tokenize: encode")
    rejected = sum((Counter(p["rejected"]) for p in encoded), Counter())
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for part in encoded:
        for g in part["groups"]:
            groups[(g["source_id"], g["split"])].append(g)
    keys = sorted(groups)
    rt.cluster.map(merge_shards, [[g["shard"] for g in groups[k]] for k in keys],
                   [out.path("datasets", f"{s}_{sp}") for s, sp in keys], vocab=tok.vocab_size)
    by_id = {m.id: m for m in inputs.sources}
    datasets = []
    for source, split in keys:
        gs = groups[(source, split)]
        datasets.append(Dataset(
            source_id=source, domain=by_id[source].domain, license=by_id[source].license, split=split,
            prefix=out.rel("datasets", f"{source}_{split}"), num_docs=sum(g["num_docs"] for g in gs),
            num_tokens=sum(g["num_tokens"] for g in gs), num_words=sum(g["num_words"] for g in gs),
            max_token_id=max(max(g["max_token_id"] for g in gs), tok.eod)))
    remove_tree(out.path("shards"))
    pieces = [out.path("_ledger", f"{n}.parquet") for n, e in zip(names, encoded) if e["groups"] or e["rejected"]]
    written = rt.cluster.map(write_ledger, [pieces], datasets={f"{s}/{sp}": out.rel("datasets", f"{s}_{sp}")
                                                              for s, sp in keys},
                             steps=inputs.curated.steps, index_uri=out.path("doc_index.parquet"),
                             ledger_uri=out.path("ledger.parquet"))[0]
    remove_tree(out.path("_ledger"))
    ledger = LedgerInfo(path=out.rel("ledger.parquet"), sha256=written["sha256"], rows=written["rows"],
                        tokens_by_license=written["tokens_by_license"], tokens_by_source=written["tokens_by_source"])
    n_docs, n_rejected = sum(d.num_docs for d in datasets), sum(rejected.values())
    received = inputs.curated.counts.kept
    if n_docs + n_rejected != received or n_rejected != len(exclude):
        raise AssertionError(f"documents lost in tokenization: {received} curated, {n_docs} tokenized, "
                             f"{n_rejected} rejected of {len(exclude)} to reject")
    return TokenizeResult(tokenizer=tok, datasets=tuple(datasets), doc_index=out.rel("doc_index.parquet"),
                          tokens_by_split={sp: sum(d.num_tokens for d in datasets if d.split == sp) for sp in SPLITS},
                          encoders=tuple(sorted({g["engine"] for part in encoded for g in part["groups"]})), ledger=ledger,
                          counts=Counts(received, n_docs, n_rejected), evalsets=evalsets, decontaminated=dict(rejected))


def contract_rows(result: TokenizeResult) -> tuple[dict, ...]:
    """One row per dataset for the `tokenized` contract (ids within the vocabulary, no empty datasets)."""
    return tuple({"source_id": d.source_id, "split": d.split, "num_docs": d.num_docs, "num_tokens": d.num_tokens,
                  "max_token_id": d.max_token_id, "vocab_size": result.vocab_size} for d in result.datasets)


def reads(cfg: TokenizeConfig, inputs: TokenizeInputs) -> list:
    """A loaded tokenizer's content (local or remote)."""
    return [["tokenizer", hashlib.sha256(read_bytes(cfg.tokenizer_path)).hexdigest()]] if cfg.tokenizer_path else []


STAGE = StageDef(name="tokenize", run=run, result=TokenizeResult, reads=reads)
