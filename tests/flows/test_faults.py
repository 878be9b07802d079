"""Faults with real processes and real signals: a Dask worker killed mid-curation, the whole pipeline killed
mid-stage, the S3 endpoint going away mid-stage (a pipeline reading from and writing to S3, moto's server on
127.0.0.1, not a mocked client). (A training job killed with -9 and resumed: test_training.)"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.runner import is_transient
from tasks.core.cluster import list_parts
from tasks.curate import stage as curate
from tasks.curate.config import CurateConfig
from tasks.curate.rules.gopher_quality import GopherQualityConfig
from tasks.curate.rules.language import LanguageConfig
from tasks.ingest import stage as ingest
from tasks.ingest.readers import Limits
from tests.conftest import REPO, approve, run_direct, write_recipe


def test_transient_errors_are_told_apart_from_permanent_ones():
    class KilledWorker(Exception):
        pass

    assert is_transient(ConnectionRefusedError("s3 down"))
    assert is_transient(TimeoutError())
    assert is_transient(KilledWorker("lost"))
    wrapped = RuntimeError("stage failed")
    wrapped.__cause__ = OSError("connection reset")
    assert is_transient(wrapped)
    assert not is_transient(ValueError("bad recipe"))
    assert not is_transient(PermissionError("denied"))
    assert not is_transient(AssertionError("documents lost"))
    assert not is_transient(None)


def _content_hashes(stage_uri: str) -> dict[str, str]:
    """sha256 of every output table (rows in file order, all columns), by relative path."""
    out = {}
    for p in list_parts(stage_uri):
        df = pd.read_parquet(p)
        out[os.path.relpath(p, stage_uri)] = hashlib.sha256(df.to_json(orient="split").encode()).hexdigest()
    return out


@pytest.mark.slow
def test_dask_worker_killed_mid_curation(tmp_path, demo_corpus, dask_processes):
    cluster = dask_processes
    gate = approve(["shakespeare", "mitre_cwe", "mitre_attack", "python_docs"], demo_corpus)
    got, _ = run_direct(ingest.STAGE, ingest.IngestSettings(Limits(5_000_000), 200, 0.0), ingest.IngestInputs(tuple(m.data() for m in gate.sources)),
                        tmp_path, cluster)
    cfg = CurateConfig(steps=("normalize", "language", "gopher_quality", "gopher_repetition", "hap", "pii"),
                       gopher_quality=GopherQualityConfig(min_words=20), language=LanguageConfig(min_score=0.3))
    inputs = curate.CurateInputs(got, gate.policy)
    reference, clean = run_direct(curate.STAGE, cfg, inputs, tmp_path, cluster, key="clean")

    from tasks.core.stage import Runtime
    from tasks.core.storage import StageDir

    faulty = StageDir(str(tmp_path), "curate", "faulty")
    faulty.begin()
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(
        out=curate.run(cfg, inputs, faulty, Runtime(cluster=cluster))))
    runner.start()
    killed = None
    deadline = time.time() + 120
    while killed is None and time.time() < deadline and runner.is_alive():
        done = len(list_parts(faulty.path("_work")))
        busy = [w for w, keys in cluster.client.processing().items() if keys]
        if done >= 2 and busy:
            pid = cluster.client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(pid, signal.SIGKILL)  # the worker process itself; its nanny starts a new one
            killed = (pid, done)
        time.sleep(0.05)
    assert killed is not None, "curation finished before a worker could be killed"
    assert runner.is_alive(), "the kill must land while curation is still running"
    runner.join(timeout=300)
    assert not runner.is_alive() and result, "curation did not complete after the worker was killed"
    out = result["out"]
    assert out.counts == reference.counts and out.funnel == reference.funnel
    assert out.counts.received == got.counts.kept
    assert _content_hashes(faulty.uri) == _content_hashes(clean.uri)
    assert not os.path.exists(faulty.path("_work"))


def _keel(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *args], cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


@pytest.mark.slow
def test_pipeline_killed_mid_stage_then_rerun(tmp_path, demo_corpus):
    """kill -9 of the whole process group (flow, embedded server, Dask workers) while curation writes."""
    recipe = write_recipe(tmp_path, demo_corpus, ids=["mitre_attack"])
    env = {**os.environ, "KEEL_LOCK_DIR": str(tmp_path / "locks")}
    env.pop("PREFECT_API_URL", None)
    args = ["run", "--recipe", str(recipe), "--until", "curate", "--json", "--set", "dask.partition_rows=300"]
    proc = _keel(args, env=env)
    runs = tmp_path / "runs"
    deadline = time.time() + 240
    interrupted = None
    while time.time() < deadline and proc.poll() is None:
        work = list(runs.glob("curate/*/_work/*.parquet"))
        if work:
            interrupted = work[0].parent.parent
            break
        time.sleep(0.05)
    assert interrupted is not None, f"curation never started: {proc.communicate()[0][-3000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (interrupted / "_SUCCESS").exists()
    (ingest_dir,) = list(runs.glob("ingest/*/_SUCCESS"))
    ingest_mtime = ingest_dir.stat().st_mtime

    again = _keel(args, env=env)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-3000:]
    res = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    assert res["stage_status"]["ingest"] == "cached" and res["stage_status"]["contract_raw"] == "cached"
    assert res["stage_status"]["curate"] == "completed"
    assert ingest_dir.stat().st_mtime == ingest_mtime  # finished stage not recomputed
    cur = runs / "curate" / res["stage_hashes"]["curate"]
    assert cur == interrupted and (cur / "_SUCCESS").exists() and not (cur / "_work").exists()
    c = res["counts"]["curate"]
    assert c["in"] == res["counts"]["ingest"]["kept"] == c["kept"] + c["rejected"]
    # no leftovers of the killed attempt: the files on disk are exactly the counted rows
    kept = sum(len(pd.read_parquet(p, columns=["doc_id"])) for p in list_parts(str(cur / "data")))
    rejected = sum(len(pd.read_parquet(p, columns=["doc_id"])) for p in list_parts(str(cur / "rejects")))
    assert (kept, rejected) == (c["kept"], c["rejected"])
    assert not list(cur.rglob("*.tmp"))


@pytest.mark.slow
def test_s3_outage_mid_stage_is_retried(tmp_path, demo_corpus, s3_endpoint, s3, prefect_harness):
    for sid in ("mitre_cwe", "python_docs"):
        s3.put(str(demo_corpus / sid / "part-00000.jsonl.gz"), f"keel-test/corpus/{sid}/part-00000.jsonl.gz")
    recipe = write_recipe(tmp_path, demo_corpus, ids=["mitre_cwe", "python_docs"])
    overrides = ["run.output_root=s3://keel-test/outage", "sources.data_root=s3://keel-test/corpus",
                 "dask.partition_rows=200", "run.retries=4", "run.retry_delay_s=3"]
    outage: dict = {}

    def cut_when_curation_writes():
        import s3fs

        watcher = s3fs.S3FileSystem(skip_instance_cache=True)
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                if watcher.find("keel-test/outage/curate"):
                    break
            except OSError:
                pass
            watcher.invalidate_cache()
            time.sleep(0.05)
        s3_endpoint.stop()
        outage["start"] = time.time()
        time.sleep(12)
        s3_endpoint.start()
        outage["end"] = time.time()

    cutter = threading.Thread(target=cut_when_curation_writes, daemon=True)
    cutter.start()
    from flows.pipeline import keel_pipeline

    res = keel_pipeline(str(recipe), overrides, until="plan")
    cutter.join(timeout=60)
    assert "end" in outage, "the outage never happened"
    c = res["counts"]["curate"]
    assert res["stage_status"]["curate"] == "completed" and c["in"] == c["kept"] + c["rejected"]
    assert c["in"] == res["counts"]["ingest"]["kept"]
    client = MlflowClient(res["tracking_uri"])
    exp = client.get_experiment_by_name("keel-test").experiment_id
    runs = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{res['mlflow_run_id']}'")
    curate_runs = sorted((r for r in runs if r.data.tags.get("keel.stage") == "curate"), key=lambda r: r.info.start_time)
    assert [r.info.status for r in curate_runs][-1] == "FINISHED"
    assert "FAILED" in [r.info.status for r in curate_runs], "the outage should have failed an attempt"
    kept = sum(len(pd.read_parquet(f"s3://{p}", columns=["doc_id"]))
               for p in s3.find(f"keel-test/outage/curate/{res['stage_hashes']['curate']}/data"))
    assert kept == c["kept"]
    # everything after curation on S3 too: the tokenized datasets and the ledger; a re-run finds it all cached
    assert res["output_root"] == "s3://keel-test/outage" and res["counts"]["tokenize"]["in"] == c["kept"]
    tok = f"keel-test/outage/tokenize/{res['stage_hashes']['tokenize']}"
    assert s3.exists(f"{tok}/_SUCCESS") and s3.exists(f"{tok}/ledger.parquet")
    assert any(p.endswith(".bin") for p in s3.find(f"{tok}/datasets"))
    again = keel_pipeline(str(recipe), overrides, until="plan")
    assert all(again["stage_status"][st] == "cached" for st in ("ingest", "curate", "tokenize"))
    # the S3 secret key signed every request, and was written nowhere: local files, S3 objects, Prefect
    from tests.conftest import PLANTED_SECRET, files_containing, prefect_records_containing

    assert files_containing(PLANTED_SECRET, tmp_path) == []
    assert [p for p in s3.find("keel-test") if PLANTED_SECRET.encode() in s3.cat_file(p)] == []
    assert prefect_records_containing(PLANTED_SECRET) == []
