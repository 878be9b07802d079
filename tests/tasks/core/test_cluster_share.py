"""Cluster.share sends one object to every worker: a dict arrives whole (Dask's scatter of a dict makes one future
per key, which broke the tokenize stage once decontamination excluded thousands of documents)."""
from distributed import Future

from tasks.core.cluster import Cluster


def _size(_, table=None) -> int:
    return len(table)


def test_a_shared_dict_is_one_object_on_every_worker():
    cluster = Cluster(n_workers=1)
    try:
        table = {f"doc-{i}": "eval_contamination:task" for i in range(5000)}
        shared = cluster.share(table)
        assert isinstance(shared, Future)
        assert cluster.map(_size, [1, 2, 3], table=shared) == [5000] * 3
    finally:
        cluster.close()
