"""A hostile corpus through the real flow (legal gate -> ingest -> curate on Dask): every record is either kept
or quarantined with a reason, counts add up, nothing crashes. Hostile manifests are refused with a message."""
from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter

import pandas as pd
import pytest
import zstandard

from flows.pipeline import keel_pipeline
from tasks.core.cluster import list_parts
from tests.conftest import REPO, write_recipe

pytestmark = pytest.mark.slow

def _line(**rec) -> bytes:
    return json.dumps(rec).encode()


def _real_texts(demo_corpus, n: int) -> list[str]:
    with gzip.open(next((demo_corpus / "shakespeare").glob("*.jsonl.gz")), "rt") as f:
        return [json.loads(line)["text"] for _, line in zip(range(n), f)]


def _hostile_source(root, data_root, texts):
    folder = data_root / "hostile"
    folder.mkdir(parents=True)
    good = [_line(id=f"g{i}", text=t) for i, t in enumerate(texts[:30])]
    records = good + [
        b"{broken json",
        b"\xff\xfe\xfd not utf-8",
        _line(id="nul", text="text with a \x00 byte"),
        _line(id="empty", text=""),
        _line(id="blank", text="   \n\t "),
        _line(id="typed", text=12345),
        _line(id=["list"], text="an id that is a list"),
        _line(id="nolicence", text=texts[0] + " (second edition)", license="LicenseRef-unknown-terms"),
        _line(id="g0", text=texts[40]),  # duplicate native id, different text
        _line(id="huge", text="word " * (10 * 1024 * 1024)),  # 50 MB document
    ] + [_line(id=f"adversarial-{i}", text=texts[i] + " " + unit * (1_000_000 // len(unit)))  # 1 MB each, built to
         for i, unit in enumerate(["ab-", "a.", "[", "x.y", "a@a.", "\u200b"])]  # defeat naive regexes
    body = b"\n".join(records) + b"\n"
    (folder / "a.jsonl").write_bytes(body)
    extra = [_line(id=f"x{i}", text=t) for i, t in enumerate(texts[30:40])]
    (folder / "b.jsonl.gz").write_bytes(gzip.compress(b"\n".join(extra[:5]) + b"\n")[:-40])  # truncated gzip
    (folder / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(extra[5:]) + b"\n")[:-25])
    manifests = root / "manifests"
    shutil.copytree(REPO / "data_contracts" / "sources", manifests)
    text = (manifests / "mitre_cwe.toml").read_text()
    text = text.replace('id = "mitre_cwe"', 'id = "hostile"').replace('uri = "mitre_cwe"', 'uri = "hostile"')
    text = text.replace('license = "LicenseRef-scancode-cwe-tou"', 'license = "MIT"').replace(
        'domain = "cybersecurity"', 'domain = "general"')
    (manifests / "hostile.toml").write_text(text)
    return manifests, len(records)


def test_hostile_corpus_is_quarantined_not_crashed(tmp_path, demo_corpus, prefect_harness):
    data_root = tmp_path / "data"
    shutil.copytree(demo_corpus / "mitre_cwe", data_root / "mitre_cwe")
    manifests, n_plain = _hostile_source(tmp_path, data_root, _real_texts(demo_corpus, 41))
    recipe = write_recipe(tmp_path, data_root, ids=["hostile", "mitre_cwe"], manifests=manifests)
    res = keel_pipeline(str(recipe), ["curate.language.min_score=0.0"], until="curate")
    ing, cur = res["counts"]["ingest"], res["counts"]["curate"]
    ingest_uri = f"{res['output_root']}/ingest/{res['stage_hashes']['ingest']}"
    rej = pd.concat([pd.read_parquet(p) for p in list_parts(f"{ingest_uri}/rejects")], ignore_index=True)
    hostile = rej[rej["source_id"] == "hostile"]
    reasons = Counter(hostile["reject_reason"])
    for reason in ("broken_json", "invalid_utf8", "nul_byte", "empty_text", "wrong_type:text", "wrong_type:id",
                   "truncated_file"):
        assert reasons[reason] >= 1, (reason, reasons)
    assert reasons["line_too_long"] == 1  # the 50 MB record: over the line cap, skipped without being held
    assert reasons["truncated_file"] == 2  # the .gz and the .zst
    # the 50 MB document is quarantined without its text but with its size
    assert ing["in"] == ing["kept"] + ing["rejected"]
    assert cur["in"] == ing["kept"] == cur["kept"] + cur["rejected"]
    cur_uri = f"{res['output_root']}/curate/{res['stage_hashes']['curate']}"
    crej = pd.concat([pd.read_parquet(p) for p in list_parts(f"{cur_uri}/rejects")], ignore_index=True)
    assert "license_not_allowed:LicenseRef-unknown-terms" in set(crej["reject_reason"])
    kept = pd.concat([pd.read_parquet(p, columns=["doc_id", "source_id", "native_id"])
                      for p in list_parts(f"{cur_uri}/data")])
    # the two records with id g0 are both accounted for, and never both kept
    g0 = (crej["native_id"] == "g0").sum(), (kept["native_id"] == "g0").sum()
    assert sum(g0) == 2 and g0[1] <= 1
    if g0[1] == 1 and (crej["reject_step"] == "duplicate_id").any():
        assert set(crej.loc[crej["reject_step"] == "duplicate_id", "reject_reason"]) == {"duplicate_doc_id"}
    assert kept["doc_id"].is_unique and (kept["source_id"] == "hostile").sum() >= 20
    assert len(kept) == cur["kept"] and len(crej) == cur["rejected"]


def test_unknown_source_is_refused_with_a_clear_message(tmp_path, demo_corpus, prefect_harness):
    recipe = write_recipe(tmp_path, demo_corpus, ids=["mitre_cwe", "no_such_source"])
    with pytest.raises(Exception, match="no_such_source"):
        keel_pipeline(str(recipe), until="legal")
