"""Against real protocols and processes: the pipeline reading from and writing to S3 (moto's server on
127.0.0.1, not a mocked client), and curation on a Dask cluster started as `dask scheduler` / `dask worker`."""
import pandas as pd
import pytest

from flows.pipeline import keel_pipeline
from tasks.core.cluster import list_parts
from tasks.curate import stage as curate
from tasks.curate.config import CurateConfig
from tasks.curate.rules.gopher_quality import GopherQualityConfig
from tasks.ingest import stage as ingest
from tasks.ingest.readers import Limits
from tests.conftest import PLANTED_SECRET, approve, files_containing, prefect_records_containing, run_direct, write_recipe

pytestmark = pytest.mark.slow


def test_pipeline_reads_and_writes_s3(tmp_path, demo_corpus, s3, prefect_harness):
    for sid in ("mitre_cwe", "python_docs"):
        s3.put(str(demo_corpus / sid / "part-00000.jsonl.gz"), f"keel-test/corpus/{sid}/part-00000.jsonl.gz")
    recipe = write_recipe(tmp_path, demo_corpus, ids=["mitre_cwe", "python_docs"])
    out = keel_pipeline(str(recipe), ["run.output_root=s3://keel-test/runs", "sources.data_root=s3://keel-test/corpus"],
                        until="plan")
    assert out["output_root"] == "s3://keel-test/runs"
    c = out["counts"]
    assert c["ingest"]["in"] == c["ingest"]["kept"] > 1400 and c["tokenize"]["kept"] == c["curate"]["kept"]
    tok = f"keel-test/runs/tokenize/{out['stage_hashes']['tokenize']}"
    assert s3.exists(f"{tok}/_SUCCESS") and s3.exists(f"{tok}/ledger.parquet")
    assert any(p.endswith(".bin") for p in s3.find(f"{tok}/datasets"))
    kept = sum(len(pd.read_parquet(f"s3://{p}", columns=["doc_id"]))
               for p in s3.find(f"keel-test/runs/curate/{out['stage_hashes']['curate']}/data"))
    assert kept == c["curate"]["kept"]
    again = keel_pipeline(str(recipe), ["run.output_root=s3://keel-test/runs", "sources.data_root=s3://keel-test/corpus"],
                          until="plan")
    assert all(again["stage_status"][s] == "cached" for s in ("ingest", "curate", "tokenize"))
    # the S3 secret key signed every request, and was written nowhere: local files, S3 objects, Prefect
    assert files_containing(PLANTED_SECRET, tmp_path) == []
    assert [p for p in s3.find("keel-test") if PLANTED_SECRET.encode() in s3.cat_file(p)] == []
    assert prefect_records_containing(PLANTED_SECRET) == []


def test_curation_on_real_dask_scheduler_and_worker_processes(tmp_path, demo_corpus, dask_processes):
    cluster = dask_processes
    gate = approve(["mitre_attack", "python_docs"], demo_corpus)
    got, _ = run_direct(ingest.STAGE, ingest.IngestSettings(Limits(5_000_000), 500, 0.0), ingest.IngestInputs(tuple(m.data() for m in gate.sources)),
                        tmp_path, cluster)
    cfg = CurateConfig(steps=("normalize", "gopher_quality"), gopher_quality=GopherQualityConfig(min_words=20))
    out, cur = run_direct(curate.STAGE, cfg, curate.CurateInputs(got, gate.policy), tmp_path, cluster)
    # both external worker processes executed tasks, and nothing was lost
    executed = cluster.client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(executed) == 2 and all(n > 0 for n in executed.values()), executed
    assert out.counts.received == got.counts.kept and out.partitions > 2
    kept = sum(len(pd.read_parquet(p)) for p in list_parts(cur.path("data")))
    rejected = sum(len(pd.read_parquet(p)) for p in list_parts(cur.path("rejects")))
    assert kept == out.counts.kept and kept + rejected == out.counts.received
