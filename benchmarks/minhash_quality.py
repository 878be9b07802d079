"""MinHash near-duplicate detection against exact Jaccard, for keel and for datatrove, on the same pairs:

    .venv-bench/bin/python benchmarks/minhash_quality.py [--corpus .keel/bench_corpora] [--pairs-per-kind 300]

Pairs are built from documents of held-out corpora (benchmarks/build_corpora.py; any folder of part-*.jsonl(.gz)
works) by realistic edits: a few words changed; a paragraph inserted, deleted, or two swapped; web boilerplate
(navigation header, cookie banner, footer) added; a fifth of the paragraphs rewritten; two different documents
in the same page template; and unrelated documents. The truth is the exact Jaccard similarity of each pair's word
5-gram sets (lower-cased words, the shingles both implementations hash). A pair is *detected* when the two
documents share a full LSH band (the candidate rule of both: 14 bands x 8 rows). Prints, per edit kind and per
Jaccard bin, the share detected by each; recall on pairs with Jaccard >= 0.8 and the false-positive rate on
pairs with Jaccard < 0.5. Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from curation_vs_datatrove import load_corpora  # noqa: E402

BANDS, ROWS, NGRAM = 14, 8, 5
HEADER = ("Home | Products | Documentation | Blog | Community | About us | Contact | Sign in | Register "
          "Search this site Skip to main content Menu")
COOKIES = ("We use cookies to improve your experience on our website. By continuing to browse you agree to our use "
           "of cookies. Accept all Reject Manage preferences")
FOOTER = ("Copyright 2026 Example Media Group. All rights reserved. Privacy policy Terms of service Accessibility "
          "Sitemap Follow us on social media Subscribe to our newsletter for weekly updates Back to top")
TEMPLATE = [HEADER, COOKIES, "Share this page Print Email Related articles you may also like Most popular this "
            "week Editors picks Trending now", FOOTER]


def paragraphs(t: str) -> list[str]:
    ps = [p for p in re.split(r"\n\s*\n", t) if p.strip()]
    if len(ps) >= 4:
        return ps
    w = t.split()
    return [" ".join(w[i:i + 40]) for i in range(0, len(w), 40)]


def words5(t: str) -> set:
    w = re.findall(r"[^\W_]+", t.lower())
    return {tuple(w[i:i + NGRAM]) for i in range(len(w) - NGRAM + 1)}


def jaccard(a: str, b: str) -> float:
    x, y = words5(a), words5(b)
    return len(x & y) / max(len(x | y), 1)


def make_pairs(docs: list[str], per_kind: int, seed: int = 0) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    base = [d for d in docs if len(d.split()) >= 200]
    rng.shuffle(base)
    pairs = []

    def other(d):
        while True:
            o = rng.choice(base)
            if o is not d:
                return o

    for d in base[:per_kind]:
        ps = paragraphs(d)
        w = d.split()
        edit = list(w)
        for _ in range(rng.randint(1, 3)):
            edit[rng.randrange(len(edit))] = rng.choice(["foo", "bar", "lorem", "ipsum"])
        pairs.append(("light_edit", d, " ".join(edit)))
        ins = list(ps)
        ins.insert(rng.randrange(len(ins) + 1), rng.choice(paragraphs(other(d))))
        pairs.append(("paragraph_insert", d, "\n\n".join(ins)))
        dele = list(ps)
        del dele[rng.randrange(len(dele))]
        pairs.append(("paragraph_delete", d, "\n\n".join(dele)))
        swap = list(ps)
        i, j = rng.sample(range(len(swap)), 2)
        swap[i], swap[j] = swap[j], swap[i]
        pairs.append(("paragraph_reorder", d, "\n\n".join(swap)))
        pairs.append(("boilerplate", d, "\n\n".join([HEADER, COOKIES, d, FOOTER])))
        heavy = list(ps)
        for k in rng.sample(range(len(heavy)), max(1, len(heavy) // 5)):
            heavy[k] = rng.choice(paragraphs(other(d)))
        pairs.append(("heavy_edit", d, "\n\n".join(heavy)))
        o = other(d)
        short = lambda t: " ".join(t.split()[:rng.randint(40, 120)])  # noqa: E731 - a short page body
        pairs.append(("templated", "\n\n".join([TEMPLATE[0], TEMPLATE[1], short(d), TEMPLATE[2], TEMPLATE[3]]),
                      "\n\n".join([TEMPLATE[0], TEMPLATE[1], short(o), TEMPLATE[2], TEMPLATE[3]])))
        pairs.append(("unrelated", d, o))
    return pairs


def keel_detects(pairs) -> np.ndarray:
    from tasks.curate.minhash import band_keys, signatures

    texts = [t for _, a, b in pairs for t in (a, b)]
    keys = band_keys(signatures(texts, NGRAM, BANDS * ROWS), BANDS, ROWS)
    return (keys[0::2] == keys[1::2]).any(axis=1)


def datatrove_detects(pairs) -> np.ndarray:
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    peer = MinhashDedupSignature(output_folder=tempfile.mkdtemp(), config=MinhashConfig(
        n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS))
    out = []
    for _, a, b in pairs:
        sa, sb = (peer.get_signature(peer.get_shingles(t)) for t in (a, b))
        out.append(any(list(x) == list(y) for x, y in zip(sa, sb)))
    return np.array(out, dtype=bool)


BINS = [(0.0, 0.2), (0.2, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=str(REPO / ".keel" / "bench_corpora"))
    ap.add_argument("--pairs-per-kind", type=int, default=300)
    args = ap.parse_args()
    docs = [t for ts in load_corpora(Path(args.corpus)).values() for t in ts]
    pairs = make_pairs(docs, args.pairs_per_kind)
    jac = np.array([jaccard(a, b) for _, a, b in pairs])
    kinds = np.array([k for k, _, _ in pairs])
    found = {"keel": keel_detects(pairs), "datatrove": datatrove_detects(pairs)}
    print(f"{len(pairs):,} pairs from {len(docs):,} documents of {args.corpus}; detected = share a {ROWS}-row band "
          f"of {BANDS}")
    print(f"{'edit':<18} {'pairs':>6} {'Jaccard (mean)':>15} {'keel':>7} {'datatrove':>10}")
    per_kind = {}
    for k in dict.fromkeys(kinds):
        m = kinds == k
        per_kind[k] = {"pairs": int(m.sum()), "jaccard_mean": float(jac[m].mean()),
                       **{name: float(f[m].mean()) for name, f in found.items()}}
        print(f"{k:<18} {m.sum():>6} {jac[m].mean():>15.3f} {found['keel'][m].mean():>7.3f} "
              f"{found['datatrove'][m].mean():>10.3f}")
    print(f"{'Jaccard bin':<18} {'pairs':>6} {'':>15} {'keel':>7} {'datatrove':>10}")
    per_bin = {}
    for lo, hi in BINS:
        m = (jac >= lo) & (jac < hi)
        if m.any():
            per_bin[f"{lo:.1f}-{min(hi, 1.0):.1f}"] = {"pairs": int(m.sum()), **{n: float(f[m].mean()) for n, f in found.items()}}
            print(f"{lo:.1f} - {min(hi, 1.0):.1f}{'':<9} {m.sum():>6} {'':>15} {found['keel'][m].mean():>7.3f} "
                  f"{found['datatrove'][m].mean():>10.3f}")
    hi_m, lo_m = jac >= 0.8, jac < 0.5
    summary = {n: {"recall_j_ge_0.8": float(f[hi_m].mean()), "fpr_j_lt_0.5": float(f[lo_m].mean())} for n, f in found.items()}
    for n, s in summary.items():
        print(f"{n:<10} recall (Jaccard >= 0.8) {s['recall_j_ge_0.8']:.3f} on {hi_m.sum()} pairs; false positives "
              f"(Jaccard < 0.5) {s['fpr_j_lt_0.5']:.4f} on {lo_m.sum()} pairs")
    print(json.dumps({"pairs": len(pairs), "summary": summary, "per_kind": per_kind, "per_bin": per_bin}))


if __name__ == "__main__":
    main()
