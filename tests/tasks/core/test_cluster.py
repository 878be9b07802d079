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


def _started(i: int) -> float:
    import time

    t = time.monotonic()
    time.sleep(0.05)
    return t


def test_the_costliest_items_start_first():
    """Longest-processing-time order: with one worker, the items run from the costliest down, even the first
    submitted (which an idle worker would otherwise start at once)."""
    cluster = Cluster(n_workers=1)
    try:
        cost = [1, 5, 2, 8, 3, 7]
        started = cluster.map(_started, range(len(cost)), cost=cost)
        assert sorted(range(len(cost)), key=lambda i: started[i]) == sorted(range(len(cost)), key=lambda i: -cost[i])
    finally:
        cluster.close()
