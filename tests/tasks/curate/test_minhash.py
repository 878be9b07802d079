"""MinHash near dedup: deterministic signatures, banding, survivors (smallest doc_id), and unrelated documents
that never cluster."""
import gzip
import json
import random
from collections import Counter

import numpy as np
import pandas as pd

from tasks.curate.config import CurateConfig, DedupConfig
from tasks.core.cluster import write_parquet
from tasks.curate.dedup import band_columns, dedup_key, partition_drops, plan, run_dedup
from tasks.curate.minhash import band_keys, clusters, signatures
from tests.tasks.curate.dedup_reference import reference_drops

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


class InProcess:
    """cluster.map, one item after another in this process."""

    def map(self, fn, *iterables, progress="", **kwargs):
        return [fn(*args, **kwargs) for args in zip(*iterables)]


def _keyed(rows: list[tuple[str, str]], cfg: DedupConfig) -> pd.DataFrame:
    keys = band_keys(signatures([t for _, t in rows], cfg.ngram, cfg.bands * cfg.rows), cfg.bands, cfg.rows)
    frame = pd.DataFrame({"doc_id": [d for d, _ in rows], "dedup_key": [dedup_key(t) for _, t in rows]})
    return frame.assign(**{c: keys[:, i] for i, c in enumerate(band_columns(cfg))})


def _cluster_drops(tmp_path, parts: list[pd.DataFrame], cfg: DedupConfig) -> list[dict]:
    works = []
    for i, frame in enumerate(parts):
        works.append(str(tmp_path / "work" / f"part-{i:05d}.parquet"))
        write_parquet(frame, works[-1])
    p = plan(str(tmp_path / "stage"), len(works), cfg)
    _cluster_drops.counts = run_dedup(InProcess(), p, works)
    return [partition_drops(p, i) for i in range(len(works))]


def test_cluster_dedup_marks_duplicate_ids_exact_and_near_duplicates_across_partitions(tmp_path):
    rng = random.Random(3)
    near = _doc(rng).split()
    near2 = list(near)
    near2[10] = "different"
    rows = [("d1", "Hello  World"), ("d2", "hello world"), ("d3", " ".join(near)), ("d1", "dup id"),
            ("d4", " ".join(near2)), ("d5", _doc(rng))]
    cfg = DedupConfig()
    frame = _keyed(rows, cfg)
    parts = [frame.iloc[:3].reset_index(drop=True), frame.iloc[3:].reset_index(drop=True)]
    drops = _cluster_drops(tmp_path / "a", parts, cfg)
    assert drops[0] == {1: ("exact_dedup", "exact_duplicate", "d1")}
    assert drops[1] == {0: ("duplicate_id", "duplicate_doc_id", "d1"), 1: ("near_dedup", "near_duplicate", "d3")}
    assert _cluster_drops(tmp_path / "b", parts, DedupConfig(exact=False, near=False)) == [
        {}, {0: ("duplicate_id", "duplicate_doc_id", "d1")}]  # duplicate ids always go


def _hostile_corpus(rng: random.Random) -> list[tuple[str, str]]:
    """Unrelated documents, exact copies under other ids (case, spacing), chains of edited copies (each edit of the
    previous: the ends of a chain share no bucket), a duplicate id whose text would bridge two clusters, empties."""
    rows: list[tuple[str, str]] = []
    ids = iter(rng.sample(range(10_000, 99_999), 2_000))

    def new_id() -> str:
        return f"doc-{next(ids)}"

    for _ in range(60):
        rows.append((new_id(), _doc(rng, rng.randint(30, 300))))
    for _ in range(15):
        text = _doc(rng, 200)
        rows += [(new_id(), text), (new_id(), text.upper()), (new_id(), text.replace(" ", "   "))]
    for _ in range(8):
        words = _doc(rng, 250).split()
        for _ in range(rng.randint(3, 9)):
            for _ in range(4):
                words[rng.randrange(len(words))] = rng.choice(VOCAB)
            rows.append((new_id(), " ".join(words)))
    chain_end = rows[-1][1]
    rows += [(new_id(), ""), (new_id(), ""), (rows[0][0], rows[0][1])]
    rng.shuffle(rows)
    # a second doc-00001 whose text is a near copy of a chain's last document: counted in, it would give that
    # cluster its (smallest) id
    return [("doc-00001", _doc(rng))] + rows + [("doc-00001", chain_end + " extra")]


def test_cluster_dedup_equals_the_single_process_pass_whatever_the_shards(tmp_path):
    rng = random.Random(11)
    rows = _hostile_corpus(rng)
    for n, (cfg, cuts) in enumerate([(DedupConfig(), [0, 40, 41, 170, len(rows)]),
                                     (DedupConfig(shards=1), [0, len(rows)]),
                                     (DedupConfig(shards=7), [0, 100, 200, len(rows)]),
                                     (DedupConfig(exact=False, shards=3), [0, 90, len(rows)]),
                                     (DedupConfig(near=False, shards=5), [0, 150, len(rows)])]):
        frame = _keyed(rows, cfg)
        parts = [frame.iloc[a:b].reset_index(drop=True) for a, b in zip(cuts, cuts[1:])]
        expected = reference_drops(parts, cfg)
        assert _cluster_drops(tmp_path / str(n), parts, cfg) == expected
        assert _cluster_drops.counts.get("rounds", 3) >= 3  # chains: labels travel over several rounds
        steps = Counter(step for d in expected for step, _, _ in d.values())
        assert steps["duplicate_id"] == 2 and (steps["near_dedup"] > 20 or not cfg.near)
        assert steps["exact_dedup"] >= 30 or not cfg.exact


def test_cluster_dedup_keeps_the_survivors_of_the_single_process_pass_on_the_demo_corpus(tmp_path, demo_corpus):
    rows = [(json.loads(line)["id"], json.loads(line)["text"])
            for f in sorted(demo_corpus.glob("*/*.jsonl.gz")) for line in gzip.open(f, "rt")]
    cfg = DedupConfig()
    frame = _keyed(rows, cfg)
    cuts = np.linspace(0, len(frame), 6).astype(int)
    parts = [frame.iloc[a:b].reset_index(drop=True) for a, b in zip(cuts, cuts[1:])]
    expected = reference_drops(parts, cfg)
    assert _cluster_drops(tmp_path, parts, cfg) == expected
    assert sum(len(d) for d in expected) > 100  # the demo has exact and near duplicates to find


def test_the_shards_follow_the_rows_that_reach_dedup():
    cfg = DedupConfig(rows_per_shard=100_000)
    assert [plan("s", 8, cfg, rows=r).shards for r in (0, 2_909, 100_000, 100_001, 250_000, 10**9)] == [1, 1, 1, 2, 3, 8]
    assert plan("s", 8, cfg).shards == 8  # rows not known: one per partition
    assert plan("s", 8, DedupConfig(shards=5), rows=10).shards == 5
    assert CurateConfig(dedup=DedupConfig(rows_per_shard=0)).check() and not CurateConfig().check()
