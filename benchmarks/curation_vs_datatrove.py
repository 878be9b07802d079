"""keel's curation rules vs datatrove's, on the same real corpus, in the same run.

    .venv-bench/bin/python benchmarks/curation_vs_datatrove.py [--copies 5] [--near-dup-docs 1000]

Needs a venv with datatrove[processing]==0.10.1 + spacy + orjson (the peer) and keel's curation dependencies
(pandas, pyarrow, numpy, xxhash, scipy, dask[distributed]); `make bench` builds it as .venv-bench. The corpus
is any folder of corpora (`--corpus`: each subfolder of part-*.jsonl(.gz) is one; default the demo corpus under
.keel/corpus; benchmarks/build_corpora.py builds held-out ones of eight kinds). Prints, per corpus and filter,
the keep/drop agreement with its confusion (kept by keel only / by datatrove only) and examples of each with
both sides' reasons; then, on all corpora repeated `copies` times (each copy marked distinct), per filter
docs/s per core for both and the keep/drop agreement;
the heuristic chain (Gopher repetition -> Gopher quality -> C4 -> FineWeb) docs/s per core; MinHash signature
docs/s per core and recall on near-duplicate pairs (Jaccard >= 0.8); and keel's curate stage on 1 vs 2 Dask
workers. Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def load_corpora(root: Path) -> dict[str, list[str]]:
    """Each subfolder of `root` holding part-*.jsonl(.gz) files is one corpus (the demo corpus: one per source;
    benchmarks/build_corpora.py: one per kind)."""
    out: dict[str, list[str]] = {}
    for f in sorted(root.glob("*/part-*.jsonl*")):
        opener = gzip.open if f.suffix == ".gz" else open
        out.setdefault(f.parent.name, []).extend(json.loads(line)["text"] for line in opener(f, "rt", encoding="utf-8"))
    if not out:
        sys.exit(f"no corpus under {root}: run `make demo` / `.venv/bin/keel corpus`, or benchmarks/build_corpora.py")
    return out


def load_corpus(root: Path, copies: int) -> list[str]:
    texts = [t for ts in load_corpora(root).values() for t in ts]
    return [t if c == 0 else f"{t}\n\n[copy {c}]" for c in range(copies) for t in texts]


def peer_filters():
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)

    return {"gopher_repetition": GopherRepetitionFilter(), "gopher_quality": GopherQualityFilter(),
            "c4_quality": C4QualityFilter(), "fineweb_quality": FineWebQualityFilter()}


def run_peer(filt, texts: list[str], reasons: list | None = None) -> tuple[np.ndarray, float]:
    from datatrove.data import Document

    t0 = time.process_time()
    keep = []
    for i, t in enumerate(texts):
        r = filt.filter(Document(text=t, id=str(i)))
        keep.append(r is True or (isinstance(r, tuple) and r[0]) or r == True)  # noqa: E712
        if reasons is not None:
            reasons.append(r[1] if isinstance(r, tuple) and len(r) > 1 else None)
    return np.array(keep, dtype=bool), time.process_time() - t0


def run_keel(step: str, texts: list[str], reasons: list | None = None, keep_words: bool = False) -> tuple[np.ndarray, float]:
    from tasks.curate.config import CurateConfig
    from tasks.curate.registry import RULES
    from tasks.curate.text import forget_words

    if not keep_words:
        forget_words()  # each filter timed alone pays for its own word splitting
    df = pd.DataFrame({"text": texts})
    rule, source = RULES[step]
    cfg = getattr(CurateConfig(), source)
    t0 = time.process_time()
    res = rule(df, cfg)
    if reasons is not None:
        reasons.extend(res.reasons)
    return np.asarray(res.keep, dtype=bool), time.process_time() - t0


def confusion(corpora: dict[str, list[str]], examples: int = 2) -> dict:
    """Per corpus and filter: agreement, documents kept by keel only / by datatrove only, and examples of each
    with both sides' reasons."""
    out = {}
    for name, texts in corpora.items():
        out[name] = {}
        for step, filt in peer_filters().items():
            pr, kr = [], []
            pk, _ = run_peer(filt, texts, pr)
            kk, _ = run_keel(step, texts, kr)
            keel_only, peer_only = np.flatnonzero(kk & ~pk), np.flatnonzero(pk & ~kk)
            row = {"documents": len(texts), "agreement": float((pk == kk).mean()), "kept_by_keel_only": len(keel_only),
                   "kept_by_datatrove_only": len(peer_only)}
            print(f"  {name:<16} {step:<18} agreement {row['agreement']:.4f}  keel-only {len(keel_only):>4}  "
                  f"datatrove-only {len(peer_only):>4}  of {len(texts)}")
            for label, idx in (("kept by keel only", keel_only), ("kept by datatrove only", peer_only)):
                for i in idx[:examples]:
                    snippet = re.sub(r"\s+", " ", texts[i][:140])
                    print(f"      {label}: keel {kr[i] or 'keep'} / datatrove {pr[i] or 'keep'}: {snippet!r}")
            out[name][step] = row
    return out


def near_dup_pairs(texts: list[str], n: int, seed: int = 0) -> tuple[list[str], list[tuple[int, int, float]]]:
    """Originals plus lightly edited copies; each pair with its exact word 5-gram Jaccard."""
    rng = random.Random(seed)
    pool = [t for t in texts if len(t.split()) >= 150][:n]
    docs, pairs = [], []
    for t in pool:
        words = t.split()
        for _ in range(rng.choice([1, 2])):
            i = rng.randrange(len(words))
            words[i] = words[i][::-1]
        docs += [t, " ".join(words)]
        pairs.append((len(docs) - 2, len(docs) - 1, _jaccard(t, " ".join(words))))
    return docs, pairs


def _grams(t: str) -> set:
    w = re.findall(r"\w+", t.lower())
    return {tuple(w[i:i + 5]) for i in range(len(w) - 4)}


def _jaccard(a: str, b: str) -> float:
    x, y = _grams(a), _grams(b)
    return len(x & y) / max(len(x | y), 1)


def minhash_compare(texts: list[str], near_docs: list[str], pairs) -> dict:
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

    from tasks.curate.minhash import band_keys, clusters, signatures

    peer = MinhashDedupSignature(output_folder=tempfile.mkdtemp())
    t0 = time.process_time()
    for t in texts:
        peer.get_signature(peer.get_shingles(t))
    peer_s = time.process_time() - t0
    t0 = time.process_time()
    band_keys(signatures(texts, 5, 112), 14, 8)
    keel_s = time.process_time() - t0
    keys = band_keys(signatures(near_docs, 5, 112), 14, 8)
    ids = pd.Series([f"{i:08d}" for i in range(len(near_docs))])
    survivor = clusters(ids, keys)
    high = [(a, b) for a, b, j in pairs if j >= 0.8]
    found = sum(survivor[a] == survivor[b] for a, b in high)
    return {"peer_docs_per_s": len(texts) / peer_s, "keel_docs_per_s": len(texts) / keel_s,
            "ratio": peer_s / keel_s, "recall": found / max(len(high), 1), "pairs_jaccard_ge_0.8": len(high)}


def scaling(texts: list[str], workers: int) -> float:
    from tasks.core.cluster import Cluster
    from tasks.core.stage import Counts, Runtime
    from tasks.core.storage import StageDir
    from tasks.curate import stage as curate
    from tasks.curate.config import CurateConfig
    from tasks.govern.legal import DocumentPolicy
    from tasks.ingest.stage import IngestResult

    tmp = Path(tempfile.mkdtemp(prefix="keel-scale-"))
    docs = tmp / "ingest" / "x" / "docs"
    docs.mkdir(parents=True)
    rows = max(200, -(-len(texts) // 16))  # 16 partitions: enough per worker to balance uneven documents
    for i in range(0, len(texts), rows):
        chunk = texts[i:i + rows]
        pd.DataFrame({"doc_id": [f"{i + j:032x}" for j in range(len(chunk))], "source_id": "bench", "domain": "general",
                      "license": "MIT", "native_id": "x", "text": chunk, "url": None, "origin_file": "x",
                      "content_sha256": "x"}).to_parquet(docs / f"part-{i // rows:05d}.parquet")
    cfg = CurateConfig(steps=("normalize", "gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality"))
    ingested = IngestResult(docs="ingest/x/docs", counts=Counts(len(texts), len(texts), 0), rejected_by_reason={},
                            per_source={}, files=1)
    policy = DocumentPolicy((), (), (), (), (), (), (), False, False)
    cluster = Cluster(n_workers=workers)
    try:
        cluster.client.wait_for_workers(workers)
        # long-lived workers (`keel up --dask`, a cluster) import keel once; time the curation, not the imports
        cluster.client.run(lambda: __import__("tasks.curate.stage") and __import__("tasks.curate.registry"))
        sd = StageDir(str(tmp), "curate", "x")
        sd.begin()
        t0 = time.perf_counter()
        curate.run(cfg, curate.CurateInputs(ingested, policy), sd, Runtime(cluster=cluster))
        return len(texts) / (time.perf_counter() - t0)
    finally:
        cluster.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=str(REPO / ".keel" / "corpus"))
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--near-dup-docs", type=int, default=1000)
    ap.add_argument("--fidelity-only", action="store_true", help="only the per-corpus agreement and examples")
    args = ap.parse_args()
    print("keep/drop agreement per corpus and filter (confusion and examples):")
    per_corpus = confusion(load_corpora(Path(args.corpus)))
    worst = {step: min(per_corpus[c][step]["agreement"] for c in per_corpus) for step in peer_filters()}
    print("lowest agreement over the corpora: " + ", ".join(f"{k} {v:.4f}" for k, v in worst.items()))
    if args.fidelity_only:
        print(json.dumps({"agreement_min_per_filter": worst, "per_corpus": per_corpus}))
        return
    texts = load_corpus(Path(args.corpus), args.copies)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f"corpus: {len(texts):,} documents, {mb:.1f} MB (every corpus under {args.corpus} x{args.copies})")
    agreement, peer_total, keel_total = {}, 0.0, 0.0
    for step, filt in peer_filters().items():
        pk, ps = run_peer(filt, texts)
        kk, ks = run_keel(step, texts)
        agreement[step] = float((pk == kk).mean())
        peer_total += ps
        keel_total += ks
        print(f"{step:<18} datatrove {len(texts) / ps:>9,.0f} docs/s/core  keel {len(texts) / ks:>9,.0f} docs/s/core  "
              f"ratio {ps / ks:5.1f}x  keep/drop agreement {agreement[step]:.4f}  (kept {pk.mean():.3f} vs {kk.mean():.3f})")
    # the chain, as a pipeline runs it: each filter sees the survivors of the previous ones; keel's curate stage
    # takes SUB_BATCH documents through the whole chain at a time (the filters then share a document's words)
    from tasks.curate.stage import SUB_BATCH

    alive_p, pc, kc, alive_k = list(texts), 0.0, 0.0, []
    for step, filt in peer_filters().items():
        pk, ps = run_peer(filt, alive_p)
        alive_p = [t for t, k in zip(alive_p, pk) if k]
        pc += ps
    from tasks.curate.text import forget_words

    forget_words()
    for i in range(0, len(texts), SUB_BATCH):
        batch = texts[i:i + SUB_BATCH]
        for step in peer_filters():
            kk, ks = run_keel(step, batch, keep_words=True)
            batch = [t for t, k in zip(batch, kk) if k]
            kc += ks
        alive_k += batch
    print(f"heuristic chain     datatrove {len(texts) / pc:>9,.0f} docs/s/core  keel {len(texts) / kc:>9,.0f} docs/s/core  "
          f"ratio {pc / kc:5.1f}x  survivors {len(alive_p):,} vs {len(alive_k):,}")
    near_docs, pairs = near_dup_pairs(texts[: len(texts) // args.copies], args.near_dup_docs)
    mh = minhash_compare(texts, near_docs, pairs)
    print(f"minhash signatures  datatrove {mh['peer_docs_per_s']:>9,.0f} docs/s/core  keel {mh['keel_docs_per_s']:>9,.0f} "
          f"docs/s/core  ratio {mh['ratio']:5.1f}x  recall {mh['recall']:.3f} on {mh['pairs_jaccard_ge_0.8']} pairs (J >= 0.8)")
    one, two = scaling(texts, 1), scaling(texts, 2)
    print(f"keel curate on Dask: 1 worker {one:,.0f} docs/s, 2 workers {two:,.0f} docs/s, scaling {two / one:.2f}x")
    print(json.dumps({"documents": len(texts), "mb": round(mb, 1), "ratio": pc / kc,
                      "agreement_min_per_filter": worst, "per_corpus": per_corpus,
                      "agreement": min(agreement.values()), "agreement_per_filter": agreement,
                      "minhash_ratio": mh["ratio"], "minhash_recall": mh["recall"], "scaling_2v1": two / one,
                      "peer_chain_docs_per_s_core": len(texts) / pc, "keel_chain_docs_per_s_core": len(texts) / kc}))


if __name__ == "__main__":
    main()
