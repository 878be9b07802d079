"""Tokenization throughput and memory: keel's tokenize stage vs the approach of Megatron-LM's
tools/preprocess_data.py (multiprocessing Pool.imap over JSONL lines, one HF encode per document,
IndexedDatasetBuilder in the parent), same corpus, same tokenizer, same number of workers.

    python benchmarks/tokenize_vs_megatron.py [--workers 2] [--scale 2] [--growth 10]

The corpus is the curated demo corpus (real text) repeated `scale` times (1x) and `scale * growth` times (10x).
Peak RSS is the largest resident set of any process of the run (driver, Dask workers or pool workers),
sampled every 50 ms. Last line: one JSON object with ratio (keel / peer tokens/s) and rss_growth.
"""
from __future__ import annotations

import argparse
import glob
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class PeakRSS:
    """Largest RSS of this process or any descendant while active."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            for p in [me] + me.children(recursive=True):
                try:
                    self.peak = max(self.peak, p.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.05)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


_TOK = None


def _peer_init(path):
    global _TOK
    from tokenizers import Tokenizer

    _TOK = Tokenizer.from_file(path)


def _peer_encode(line):
    text = json.loads(line)["text"]
    return _TOK.encode(text).ids, len(line)


def run_peer(jsonl: Path, tok_path: str, out: Path, workers: int, eod: int) -> dict:
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    builder = IndexedDatasetBuilder(str(out) + ".bin", dtype=np.uint16)
    tokens = 0
    t0 = time.perf_counter()
    with open(jsonl, encoding="utf-8") as f, mp.Pool(workers, initializer=_peer_init, initargs=(tok_path,)) as pool:
        for ids, _ in pool.imap(_peer_encode, f, 32):
            ids = ids + [eod]
            builder.add_document(torch.tensor(ids, dtype=torch.int64), [len(ids)])
            tokens += len(ids)
    builder.finalize(str(out) + ".idx")
    return {"seconds": time.perf_counter() - t0, "tokens": tokens}


def run_keel(parts: list[str], tok_path: str, root: Path, cluster) -> dict:
    """The tokenize stage's entry on the partitions under <root>/curate/x/data."""
    from tasks.core.stage import Counts, Runtime
    from tasks.core.storage import StageDir
    from tasks.curate.stage import CurateResult
    from tasks.govern.legal import SourceData
    from tasks.tokenize import stage as tokenize
    from tasks.tokenize.config import TokenizeConfig

    n = sum(len(pd.read_parquet(p, columns=["doc_id"])) for p in parts)
    curated = CurateResult(data="curate/x/data", counts=Counts(n, n, 0), funnel=(), rejected_by_reason={},
                           partitions=len(parts), funnel_chart="", steps=())
    source = SourceData(id="demo", domain="general", license="MIT", format="jsonl", data_uri="", text_field="text",
                        id_field="id", url_field="url", license_field="license")
    out = StageDir(str(root), "tokenize", "x")
    out.begin()
    t0 = time.perf_counter()
    m = tokenize.run(TokenizeConfig(tokenizer_path=tok_path), tokenize.TokenizeInputs(curated, (source,)), out,
                     Runtime(cluster=cluster))
    return {"seconds": time.perf_counter() - t0, "tokens": sum(d.num_tokens for d in m.datasets),
            "encoders": list(m.encoders)}


def make_corpus(texts: list[str], copies: int, root: Path, rows: int) -> tuple[Path, list[str]]:
    root.mkdir(parents=True, exist_ok=True)
    docs = [f"{t}\n[{c}]" for c in range(copies) for t in texts]  # distinct documents
    jsonl = root / "corpus.jsonl"
    with open(jsonl, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d}) + "\n")
    parts = []
    data = root / "curate" / "x" / "data"
    data.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(docs), rows):
        chunk = docs[i:i + rows]
        p = data / f"part-{i // rows:05d}.parquet"
        pd.DataFrame({"doc_id": [f"{i + j:032x}" for j in range(len(chunk))], "source_id": "demo", "license": "MIT",
                      "text": chunk}).to_parquet(p)
        parts.append(str(p))
    return jsonl, parts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--growth", type=int, default=10)
    ap.add_argument("--rows", type=int, default=2000)
    args = ap.parse_args()
    from tasks.core.cluster import Cluster
    from tasks.tokenize.bpe import train_tokenizer

    curated = sorted(glob.glob(".keel/runs/curate/*/data/*.parquet"))
    if not curated:
        from tasks.ingest.demo_corpus import BUILDERS

        texts = [r["text"] for b in BUILDERS.values() for r in b()]
    else:
        texts = pd.concat(pd.read_parquet(p, columns=["text"]) for p in curated[: max(1, len(curated) // 2)])["text"].tolist()
    tmp = Path(tempfile.mkdtemp(prefix="keel-tokbench-"))
    pd.DataFrame({"doc_id": [str(i) for i in range(len(texts))], "text": texts}).to_parquet(tmp / "sample.parquet")
    tok = train_tokenizer([str(tmp / "sample.parquet")], 32_000, 20_000_000, str(tmp / "tokenizer.json"))
    cluster = Cluster(n_workers=args.workers)
    cluster.client  # started before timing
    results = {}
    try:
        for label, copies in (("1x", args.scale), (f"{args.growth}x", args.scale * args.growth)):
            jsonl, parts = make_corpus(texts, copies, tmp / label, args.rows)
            mb = jsonl.stat().st_size / 1e6
            with PeakRSS() as rss:
                peer = run_peer(jsonl, tok["path"], tmp / label / "peer", args.workers, tok["eod"])
            peer["peak_rss_mb"] = rss.peak / 1e6
            with PeakRSS() as rss:
                keel = run_keel(parts, tok["path"], tmp / label, cluster)
            keel["peak_rss_mb"] = rss.peak / 1e6
            assert keel["tokens"] == peer["tokens"], (keel["tokens"], peer["tokens"])
            for name, r in (("preprocess_data approach", peer), ("keel", keel)):
                r["tokens_per_s"] = r["tokens"] / r["seconds"]
                print(f"{label} ({mb:.0f} MB, {r['tokens']:,} tokens) {name:<26} {r['tokens_per_s']:>12,.0f} tokens/s "
                      f"peak RSS {r['peak_rss_mb']:,.0f} MB")
            results[label] = {"peer": peer, "keel": keel}
    finally:
        cluster.close()
    big = f"{args.growth}x"
    out = {"workers": args.workers, "ratio": results[big]["keel"]["tokens_per_s"] / results[big]["peer"]["tokens_per_s"],
           "ratio_1x": results["1x"]["keel"]["tokens_per_s"] / results["1x"]["peer"]["tokens_per_s"],
           "keel_tokens_per_s": results[big]["keel"]["tokens_per_s"], "peer_tokens_per_s": results[big]["peer"]["tokens_per_s"],
           "rss_growth": results[big]["keel"]["peak_rss_mb"] / results["1x"]["keel"]["peak_rss_mb"],
           "peer_rss_growth": results[big]["peer"]["peak_rss_mb"] / results["1x"]["peer"]["peak_rss_mb"],
           "tokens_10x": results[big]["keel"]["tokens"], "encoders": results[big]["keel"]["encoders"]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
