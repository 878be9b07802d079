"""Against real processes: curation on a Dask cluster started as `dask scheduler` / `dask worker` (the pipeline on
S3, moto's server on 127.0.0.1: tests/flows/test_faults.py, with an outage mid-stage)."""
import pandas as pd
import pytest

from tasks.core.cluster import list_parts
from tasks.curate import stage as curate
from tasks.curate.config import CurateConfig
from tasks.curate.rules.gopher_quality import GopherQualityConfig
from tasks.ingest import stage as ingest
from tasks.ingest.readers import Limits
from tests.conftest import approve, run_direct

pytestmark = pytest.mark.slow


def test_curation_on_real_dask_scheduler_and_worker_processes(tmp_path, demo_corpus, dask_processes):
    cluster = dask_processes
    gate = approve(["mitre_attack", "python_docs"], demo_corpus)
    got, _ = run_direct(ingest.STAGE, ingest.IngestSettings(Limits(5_000_000), 500, 0.0), ingest.IngestInputs(tuple(m.data() for m in gate.sources)),
                        tmp_path, cluster)
    # opt-outs travel inside the policy, as data: the external workers apply them (by id and by content hash)
    docs = pd.concat(pd.read_parquet(p) for p in list_parts(f"{tmp_path}/{got.docs}"))
    by_id, by_hash = docs.iloc[3], docs.iloc[7]
    (tmp_path / "optout.toml").write_text(f'[optout]\ndoc_ids = ["{by_id.doc_id}"]\n'
                                          f'content_sha256 = ["{by_hash.content_sha256}"]\n')
    gate = approve(["mitre_attack", "python_docs"], demo_corpus, optout=str(tmp_path / "optout.toml"))
    cfg = CurateConfig(steps=("normalize", "legal_policy", "gopher_quality"), gopher_quality=GopherQualityConfig(min_words=20))
    out, cur = run_direct(curate.STAGE, cfg, curate.CurateInputs(got, gate.policy), tmp_path, cluster)
    rej = pd.concat(pd.read_parquet(p) for p in list_parts(cur.path("rejects")) if "legal_policy" in p).set_index("doc_id")
    assert rej.loc[by_id.doc_id, "reject_reason"] == "optout_doc" and rej.loc[by_hash.doc_id, "reject_reason"] == "optout_content"
    assert (rej["text"] == "").all() and (rej["content_sha256"] != "").all()  # ids and hashes kept, not the text
    # both external worker processes executed tasks, and nothing was lost
    executed = cluster.client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(executed) == 2 and all(n > 0 for n in executed.values()), executed
    assert out.counts.received == got.counts.kept and out.partitions > 2
    kept = sum(len(pd.read_parquet(p)) for p in list_parts(cur.path("data")))
    rejected = sum(len(pd.read_parquet(p)) for p in list_parts(cur.path("rejects")))
    assert kept == out.counts.kept and kept + rejected == out.counts.received
