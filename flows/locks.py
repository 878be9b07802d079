"""One run at a time per output root, so two scheduled runs never write (or train) into the same folders.

With a Prefect API server configured (`keel up`, a cluster), the lock is a Prefect global concurrency limit of 1
named after the output root: it holds across machines, and the server reclaims the slot of a run that died
(leases expire). Without one (embedded mode) it is an OS file lock under `.keel/locks/`, released by the kernel
when the holding process dies.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Iterator

log = logging.getLogger("keel")


def lock_name(output_root: str) -> str:
    return "keel-root-" + hashlib.sha256(output_root.encode()).hexdigest()[:16]


def _api_server() -> bool:
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


@contextlib.contextmanager
def output_root_lock(output_root: str, wait_log_s: float = 30.0) -> Iterator[str]:
    name = lock_name(output_root)
    if _api_server():
        from prefect.client.orchestration import get_client
        from prefect.concurrency.sync import concurrency

        with get_client(sync_client=True) as client:
            client.upsert_global_concurrency_limit_by_name(name, limit=1)
        log.info(f"output root {output_root}: taking concurrency slot {name}")
        # a Prefect API blip must not kill a days-long run: renewal failures are logged, not raised
        with concurrency(name, occupy=1, lease_duration=60, strict=True, raise_on_lease_renewal_failure=False):
            yield f"prefect:{name}"
        return
    folder = Path(os.environ.get("KEEL_LOCK_DIR") or os.path.join(os.environ.get("KEEL_HOME", ".keel"), "locks")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.lock"
    with open(path, "a+") as f:
        start, warned = time.monotonic(), 0.0
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - start >= warned:
                    log.warning(f"output root {output_root} is in use by another run; waiting ({path})")
                    warned += wait_log_s
                time.sleep(0.5)
        try:
            yield f"file:{path}"
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
