"""MinHash near dedup: deterministic signatures, banding, survivors (smallest doc_id), and unrelated documents
that never cluster."""
import random

import numpy as np
import pandas as pd

from tasks.curate.config import DedupConfig
from tasks.curate.dedup import band_columns, choose_drops, dedup_key
from tasks.curate.minhash import band_keys, clusters, signatures

VOCAB = [f"w{i}" for i in range(5000)]


def _doc(rng: random.Random, n: int = 300) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def test_signatures_are_deterministic_and_equal_for_equal_texts():
    texts = ["the quick brown fox jumps over the lazy dog again and again", "another text entirely here now"]
    a, b = signatures(texts, 5, 112), signatures(list(texts), 5, 112)
    assert a.shape == (2, 112) and (a == b).all()
    assert (signatures([texts[0].upper()], 5, 112)[0] == a[0]).all()  # shingles are lower-cased words
    keys = band_keys(a, 14, 8)
    assert keys.shape == (2, 14) and (keys[0] != keys[1]).all()


def test_near_duplicates_share_a_bucket_and_the_smallest_id_survives():
    rng = random.Random(1)
    base = _doc(rng).split()
    edited = list(base)
    edited[150] = "changed"
    texts = [" ".join(base), _doc(rng), " ".join(edited)]
    keys = band_keys(signatures(texts, 5, 112), 14, 8)
    assert (keys[0] == keys[2]).any() and not (keys[0] == keys[1]).any()
    survivor = clusters(pd.Series(["id-b", "id-x", "id-a"]), keys)
    assert list(survivor) == ["id-a", "id-x", "id-a"]


def test_unrelated_documents_never_cluster():
    rng = random.Random(7)
    texts = [_doc(rng, rng.randint(50, 400)) for _ in range(400)]
    ids = pd.Series([f"{i:05d}" for i in range(len(texts))])
    survivor = clusters(ids, band_keys(signatures(texts, 5, 112), 14, 8))
    assert list(survivor) == list(ids)


def test_choose_drops_marks_duplicate_ids_exact_and_near_duplicates_across_partitions():
    rng = random.Random(3)
    near = _doc(rng).split()
    near2 = list(near)
    near2[10] = "different"
    rows = [("d1", "Hello  World"), ("d2", "hello world"), ("d3", " ".join(near)), ("d1", "dup id"),
            ("d4", " ".join(near2)), ("d5", _doc(rng))]
    cfg = DedupConfig()
    keys = band_keys(signatures([t for _, t in rows], cfg.ngram, cfg.bands * cfg.rows), cfg.bands, cfg.rows)
    frame = pd.DataFrame({"doc_id": [d for d, _ in rows], "dedup_key": [dedup_key(t) for _, t in rows]})
    frame = frame.assign(**{c: keys[:, i] for i, c in enumerate(band_columns(cfg))})
    parts = [frame.iloc[:3].reset_index(drop=True), frame.iloc[3:].reset_index(drop=True)]
    drops = choose_drops(parts, cfg)
    assert drops[0] == {1: ("exact_dedup", "exact_duplicate", "d1")}
    assert drops[1] == {0: ("duplicate_id", "duplicate_doc_id", "d1"), 1: ("near_dedup", "near_duplicate", "d3")}
    assert choose_drops(parts, DedupConfig(exact=False, near=False))[0] == {}
    assert np.all(keys[2] != keys[5])
