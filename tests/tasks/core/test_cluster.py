"""The local Dask cluster leaves this process's environment as it found it."""
import os

from tasks.core.cluster import THREAD_VARS, Cluster


def test_starting_a_local_cluster_does_not_make_later_jobs_single_threaded(monkeypatch):
    for k in THREAD_VARS:
        monkeypatch.delenv(k, raising=False)
    cluster = Cluster(n_workers=1)
    try:
        workers = cluster.client.run(lambda: __import__("os").environ.get("OMP_NUM_THREADS"))
        assert list(workers.values()) == ["1"]  # one thread per Dask worker process, as intended
        assert {k: os.environ.get(k) for k in THREAD_VARS} == dict.fromkeys(THREAD_VARS)  # but not here
    finally:
        cluster.close()
