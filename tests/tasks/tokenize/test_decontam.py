"""Decontamination: training documents that share a 13-gram with an evaluation item are rejected before
tokenization (`eval_contamination:<task>`), counted, written to rejects and recorded in the ledger."""
import gzip
import json

import numpy as np
import pandas as pd
import pytest

from tasks.core.cluster import Cluster
from tasks.core.stage import Counts
from tasks.curate.stage import CurateResult
from tasks.ingest.readers import doc_id
from tasks.tokenize import stage as tokenize
from tasks.tokenize.config import TokenizeConfig
from tasks.tokenize.decontam import build_index, contaminated, matches, ngram_hashes
from tasks.tokenize.shards import split_of
from tests.conftest import approve, run_direct

ITEM = ("the quick brown fox jumps over the lazy dog while seven wizards quietly judge boxing matches at "
        "dawn near the old harbour")


def test_ngrams_ignore_case_punctuation_and_spacing():
    a = ngram_hashes(ITEM, 13)
    b = ngram_hashes(ITEM.upper().replace(" ", " ,  ") + "!", 13)
    assert len(a) == len(ITEM.split()) - 12 and np.array_equal(a, b)
    assert len(ngram_hashes("too short to hold one", 13)) == 0
    shifted = ngram_hashes("word " + ITEM, 13)
    assert np.array_equal(shifted[1:], a)  # position-free: the same 13 words hash the same anywhere


def test_a_rare_overlap_is_contamination_a_common_one_is_boilerplate():
    index = build_index({"task_a": [ITEM], "heldout_x": [ITEM + " and more words after it"]}, 13)
    assert index.tasks == ("task_a", "heldout_x")
    doc = "Unrelated opening words. " + ITEM[:120] + " then something else entirely"
    hits = matches(doc, index)
    assert len(hits) > 0
    assert len(matches("nothing in common with the evaluation text at all, not a single long run", index)) == 0
    scan = {"found": {"d1": hits}, "freq": {int(h): 1 for h in hits}}
    assert contaminated([scan], index, max_doc_frequency=10) == {"d1": "eval_contamination:task_a"}
    common = {"found": {"d1": hits}, "freq": {int(h): 11 for h in hits}}  # in 11 training documents
    assert contaminated([common], index, max_doc_frequency=10) == {}


def _curated(tmp_path, texts: dict[str, str]) -> CurateResult:
    df = pd.DataFrame({"doc_id": list(texts), "source_id": "mitre_cwe", "text": list(texts.values()),
                       "license": "MIT", "content_sha256": "x"})
    folder = tmp_path / "curate" / "c" / "data"
    folder.mkdir(parents=True, exist_ok=True)
    df.to_parquet(folder / "part-0.parquet")
    return CurateResult(data="curate/c/data", counts=Counts(len(df), len(df), 0), funnel=(), rejected_by_reason={},
                        partitions=1, funnel_chart="", steps=("normalize",))


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(n_workers=1)
    yield c
    c.close()


def test_a_planted_task_item_is_removed_from_training_and_counted(tmp_path, demo_corpus, cluster):
    lines = gzip.open(demo_corpus / "mitre_cwe" / "part-00000.jsonl.gz", "rt").readlines()[:300]
    texts = {doc_id("mitre_cwe", str(i)): json.loads(line)["text"] for i, line in enumerate(lines)}
    sources = tuple(m.data() for m in approve(["mitre_cwe"], demo_corpus).sources)
    cfg = TokenizeConfig(vocab_size=600, valid_per_mille=50, test_per_mille=100)
    first, out = run_direct(tokenize.STAGE, cfg, tokenize.TokenizeInputs(_curated(tmp_path / "a", texts), sources),
                            tmp_path / "a", cluster)
    assert first.evalsets and sum(first.decontaminated.values()) == first.counts.rejected
    task = next(t for t in first.evalsets if t.kind == "name")
    item = json.loads((tmp_path / "a" / task.path).read_text().splitlines()[0])
    planted = f"{item['context']} {item['choices'][item['label']]}"
    # plant the item (context and answer) inside a training document that was kept
    ledger = pd.read_parquet(out.at(first.ledger.path))
    victim = next(d for d in ledger[ledger["split"] == "train"]["doc_id"] if split_of(d, 50, 100) == "train")
    texts[victim] = texts[victim] + "\n\nSee also: " + planted
    second, out2 = run_direct(tokenize.STAGE, cfg, tokenize.TokenizeInputs(_curated(tmp_path / "b", texts), sources),
                              tmp_path / "b", cluster)
    assert second.counts == Counts(len(texts), first.counts.kept - 1, first.counts.rejected + 1)
    rejects = pd.read_parquet(tmp_path / "b" / "tokenize" / "x" / "rejects" / "eval_contamination")
    reason = rejects.set_index("doc_id").loc[victim, "reject_reason"]
    # named after a task whose items hold the planted text (the item's own task, or a continuation item drawn
    # from the same passage of the same held-out document)
    assert reason in {f"eval_contamination:{t.name}" for t in first.evalsets if t.domain == task.domain}
    assert second.decontaminated[reason] == first.decontaminated.get(reason, 0) + 1
    ledger2 = pd.read_parquet(out2.at(second.ledger.path)).set_index("doc_id")
    assert ledger2.loc[victim, "split"] == "rejected" and ledger2.loc[victim, "verdicts"].endswith(";rejected:" + reason)
    assert victim not in set(pd.read_parquet(out2.at(second.doc_index))["doc_id"])  # never tokenized
    # switched off, nothing is rejected
    off, _ = run_direct(tokenize.STAGE, TokenizeConfig(vocab_size=600, valid_per_mille=50, test_per_mille=100,
                                                       decontaminate=False),
                        tokenize.TokenizeInputs(_curated(tmp_path / "c", texts), sources), tmp_path / "c", cluster)
    assert off.counts.rejected == 0 and off.decontaminated == {}
