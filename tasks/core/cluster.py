"""Dask cluster handle: a LocalCluster on 127.0.0.1 by default, or an existing scheduler from the recipe.

The cluster starts lazily, on the first stage that needs it, so a fully cached run never starts one.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.core.storage import is_remote, url_to_fs


@dataclass(frozen=True)
class DaskConfig:
    """Recipe section [dask]."""

    address: str = ""
    """Scheduler address (tcp://host:port) of an existing cluster; empty starts a LocalCluster."""
    n_workers: int = 2
    """Workers of the LocalCluster (one thread each)."""
    memory_limit: str = "4GiB"
    """Per-worker memory limit of the LocalCluster."""
    partition_rows: int = 20_000
    """Target documents per partition when reading raw data."""

    def check(self) -> list[str]:
        p = []
        if self.n_workers < 1 or self.partition_rows < 1:
            p.append("[dask]: n_workers and partition_rows must be at least 1")
        if self.address and not self.address.startswith(("tcp://", "tls://", "ucx://", "inproc://")):
            p.append(f"[dask].address = {self.address!r}: expected tcp://host:port (or tls://)")
        return p


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextlib.contextmanager
def _environment_kept():
    """Starting a LocalCluster sets OMP/MKL/OpenBLAS_NUM_THREADS=1 in this process's environment (meant for its
    workers); every training job started later would inherit it and run single-threaded (and compute differently
    from the same job started elsewhere). Put the variables back as they were."""
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def client_security(address: str):
    """TLS client credentials for a `tls://` scheduler: the certificate folder in KEEL_DASK_TLS (what `keel up`
    writes: ca.pem, client.pem, client.key), else Dask's own configuration (distributed.comm.tls.*)."""
    from distributed.security import Security

    tls_dir = os.environ.get("KEEL_DASK_TLS", "")
    if address.startswith("tls://") and tls_dir:
        d = Path(tls_dir)
        return Security(tls_ca_file=str(d / "ca.pem"), tls_client_cert=str(d / "client.pem"),
                        tls_client_key=str(d / "client.key"), require_encryption=True)
    return Security()


STORAGE_ENDPOINT_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION")


def _environment_plugin(env: dict[str, str]):
    """A Dask worker plugin that sets environment variables in the worker process."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class Environment(WorkerPlugin):
        def setup(self, worker=None):
            os.environ.update(env)

    return Environment()


class Cluster:
    def __init__(self, address: str = "", n_workers: int = 2, memory_limit: str = "4GiB", logger=None):
        self.address, self.n_workers, self.memory_limit = address, n_workers, memory_limit
        self.logger = logger or logging.getLogger("keel")
        self._client = None
        self._cluster = None

    @property
    def client(self):
        if self._client is not None and self.address:
            self._ship_credentials()
        if self._client is None:
            from distributed import Client, LocalCluster

            logging.getLogger("distributed").setLevel(logging.ERROR)
            if self.address:
                self._client = Client(self.address, timeout="30s", security=client_security(self.address))
                self._ship_credentials()
            else:
                import dask

                # a task whose worker dies twice is given up (KilledWorker) instead of killing two more: callers
                # that pass `quarantine=` then set its input aside and go on
                with _environment_kept(), dask.config.set({"distributed.scheduler.allowed-failures": 1}):
                    # mutual TLS with throw-away certificates: another local user cannot submit work to (and run
                    # code as) this process's workers through their loopback ports
                    self._cluster = LocalCluster(n_workers=self.n_workers, threads_per_worker=1, processes=True,
                                                 memory_limit=self.memory_limit, host="127.0.0.1", security=True,
                                                 dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
                    self._client = Client(self._cluster)
        return self._client

    def _ship_credentials(self) -> None:
        """Workers of an external scheduler did not inherit this process's environment: credentials taken from
        URIs (tasks/core/secrets.py) reach them through a worker plugin (over the scheduler's TLS connection), also
        on workers that start later."""
        from tasks.core.secrets import taken_environment

        env = taken_environment()
        if env:  # with where that storage is
            env.update({k: os.environ[k] for k in STORAGE_ENDPOINT_ENV if k in os.environ})
        if env and env != getattr(self, "_shipped", None):
            self._client.register_plugin(_environment_plugin(env), name="keel-credentials")
            self._shipped = env

    def share(self, obj):
        """Send `obj` to every worker once; pass the result as an argument of `map` instead of the object (which
        would be serialised into every task)."""
        [future] = self.client.scatter([obj], broadcast=True, hash=False)  # one object: a dict would be scattered
        return future                                                        # as one future per key

    def map(self, fn, *iterables, progress: str = "", cost: list[float] | None = None,
            quarantine: Callable[[int, BaseException], Any] | None = None, **kwargs) -> list:
        """Run fn over the iterables on the workers; results in order (raises the first task error).
        With `cost` (e.g. input bytes per item), the costliest items start first (longest-processing-time
        order), which keeps uneven partitions from leaving a worker idle at the end.
        With `quarantine`, an item whose task killed its worker twice (KilledWorker: out of memory, a crash)
        gets `quarantine(index, error)` as its result instead of failing the map.
        With `progress`, logs "progress: done/total, rate, ETA" about every 10% or 15 s."""
        if cost is not None:
            # submitted costliest first, as well as prioritised so: a task that arrives while a worker is idle
            # starts at once, whatever its priority
            args = list(zip(*iterables))
            order = sorted(range(len(args)), key=lambda i: -cost[i])
            by_index = {i: self.client.submit(fn, *args[i], pure=False, priority=-r, **kwargs)
                        for r, i in enumerate(order)}
            futures = [by_index[i] for i in range(len(args))]
        else:
            futures = self.client.map(fn, *iterables, pure=False, **kwargs)
        if progress and futures:
            self._report(futures, progress)
        if quarantine is None:
            return self.client.gather(futures)
        from distributed import wait

        wait(futures)
        out = []
        for i, fut in enumerate(futures):
            if fut.status == "error" and type(fut.exception()).__name__ == "KilledWorker":
                self.logger.warning(f"item {i} killed its worker twice: quarantined ({fut.exception()})")
                out.append(quarantine(i, fut.exception()))
            else:
                out.append(fut.result())
        return out

    def _report(self, futures: list, label: str) -> None:
        import time

        from distributed import as_completed

        total, t0, last_t, last_n = len(futures), time.monotonic(), time.monotonic(), 0
        for n, fut in enumerate(as_completed(futures), 1):
            if fut.status == "error":
                return  # gather raises it
            now = time.monotonic()
            if n == total or n - last_n >= max(1, total // 10) or now - last_t >= 15:
                rate = n / max(now - t0, 1e-9)
                eta = (total - n) / rate if rate else 0.0
                self.logger.info(f"{label}: {n}/{total} done ({100 * n / total:.0f}%), "
                                 f"{rate:.2f}/s, ETA {eta:.0f} s")
                last_t, last_n = now, n

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None


def write_parquet(df: pd.DataFrame, uri: str) -> None:
    """Write a frame to one Parquet file (temp name + rename locally; single PUT on object stores)."""
    fs, path = url_to_fs(uri)
    table = pa.Table.from_pandas(df, preserve_index=False)
    if is_remote(uri):
        pq.write_table(table, path, filesystem=fs, compression="zstd")
        return
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    tmp = path + ".tmp"
    pq.write_table(table, tmp, filesystem=fs, compression="zstd")
    fs.mv(tmp, path)


def read_parquet(uri: str, columns: list[str] | None = None) -> pd.DataFrame:
    fs, path = url_to_fs(uri)
    return pq.read_table(path, filesystem=fs, columns=columns).to_pandas()


def part_sizes(uris: list[str]) -> list[int]:
    """Bytes of each file (a cheap estimate of the work it holds)."""
    if not uris:
        return []
    fs, _ = url_to_fs(uris[0])
    return [int(fs.size(url_to_fs(u)[1]) or 0) for u in uris]


def list_parts(folder_uri: str) -> list[str]:
    fs, path = url_to_fs(folder_uri)
    if not fs.exists(path):
        return []
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    prefix = "" if proto in ("file", "local") else f"{proto}://"
    return sorted(prefix + p for p in fs.find(path) if p.endswith(".parquet"))
