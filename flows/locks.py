"""One run at a time per output root, so two runs never write (or train) into the same folders, and nothing a dead
run left behind is mistaken for a live one.

- The lock: with a Prefect API server configured (`keel up`, a cluster) a Prefect global concurrency limit of 1
  named after the normalised output-root URI (it holds across machines; the server reclaims the slot of a run that
  died); without one (embedded mode) an OS file lock under `.keel/locks/`, released by the kernel when the holder
  dies.
- The fence: taking the lock writes `<root>/_lock/owner.json` with a fresh token (and the flow run). Before every
  stage marker (and every checkpoint pointer) the writer checks the token is still its own: a run whose lease was
  lost while another took the root stops writing (`LockLost`) instead of overwriting the new holder's work.
- Zombies: the previous owner record tells the next run which flow run held the root. If that run never released it
  and Prefect still shows it Running, its process died: it is marked Crashed.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tasks.core.storage import absolute, exists, is_remote, join, read_json, write_json

log = logging.getLogger("keel")
OWNER = ("_lock", "owner.json")


class LockLost(RuntimeError):
    """Another run took this output root (this run's lease lapsed): this run must stop writing."""


def normalise_root(output_root: str) -> str:
    """One spelling per location: absolute local paths; remote URIs with a lower-case scheme, no doubled or
    trailing slashes."""
    if not is_remote(output_root):
        return absolute(output_root).rstrip("/") or "/"
    scheme, rest = output_root.split("://", 1)
    return f"{scheme.lower()}://{re.sub('/+', '/', rest).strip('/')}"


def lock_name(output_root: str) -> str:
    return "keel-root-" + hashlib.sha256(normalise_root(output_root).encode()).hexdigest()[:16]


def _api_server() -> bool:
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


@dataclass
class RootLock:
    root: str
    name: str
    holder: str
    """'prefect:<limit name>' or 'file:<path>'."""
    token: str
    flow_run_id: str

    @property
    def owner_uri(self) -> str:
        return join(self.root, *OWNER)

    def check(self) -> None:
        """Raise LockLost unless the owner record still carries this run's token."""
        try:
            owner = read_json(self.owner_uri)
        except (OSError, ValueError) as exc:
            raise LockLost(f"output root {self.root}: the lock owner record is unreadable ({exc}); stopping") from exc
        if owner.get("token") != self.token:
            raise LockLost(f"output root {self.root} was taken by flow run {owner.get('flow_run_id')} on "
                           f"{owner.get('host')} (this run's lock lease lapsed); this run stops writing")

    def fence(self) -> tuple[str, str]:
        """(local path of the owner record, token) for a training process to check; ('', '') for a remote root."""
        return ("", "") if is_remote(self.owner_uri) else (self.owner_uri, self.token)


def _mark_previous_holder_crashed(previous: dict, ours: str) -> None:
    """The last holder did not release the root: if Prefect still shows its flow run Running, it died."""
    run_id = previous.get("flow_run_id")
    if previous.get("released") or not run_id or run_id == ours:
        return
    try:
        from prefect.client.orchestration import get_client
        from prefect.states import Crashed

        with get_client(sync_client=True) as client:
            run = client.read_flow_run(run_id)
            if run.state is not None and not run.state.is_final():
                client.set_flow_run_state(run_id, Crashed(message=(
                    f"the process of this run died while it held output root {previous.get('root')} (found by "
                    f"flow run {ours}, which took the root next)")), force=True)
                log.warning(f"flow run {run_id} had died holding the output root: marked Crashed in Prefect")
    except Exception as exc:  # noqa: BLE001 - a run on another Prefect server, or none: nothing to mark
        log.debug(f"could not check flow run {run_id}: {exc}")


def _take(root: str, holder: str, flow_run_id: str) -> RootLock:
    lock = RootLock(root=root, name=lock_name(root), holder=holder, token=uuid.uuid4().hex, flow_run_id=flow_run_id)
    if exists(lock.owner_uri):
        try:
            _mark_previous_holder_crashed(read_json(lock.owner_uri), flow_run_id)
        except (OSError, ValueError):
            pass
    write_json(lock.owner_uri, {"token": lock.token, "flow_run_id": flow_run_id, "host": socket.gethostname(),
                                "pid": os.getpid(), "since": time.time(), "root": root, "released": False})
    return lock


def _release(lock: RootLock) -> None:
    try:
        owner = read_json(lock.owner_uri)
        if owner.get("token") == lock.token:
            write_json(lock.owner_uri, {**owner, "released": True, "released_at": time.time()})
    except (OSError, ValueError):
        pass


@contextlib.contextmanager
def output_root_lock(output_root: str, flow_run_id: str = "", wait_log_s: float = 30.0) -> Iterator[RootLock]:
    root = normalise_root(output_root)
    name = lock_name(root)
    if _api_server():
        from prefect.client.orchestration import get_client
        from prefect.concurrency.sync import concurrency

        with get_client(sync_client=True) as client:
            client.upsert_global_concurrency_limit_by_name(name, limit=1)
        log.info(f"output root {root}: taking concurrency slot {name}")
        # a Prefect API blip must not kill a days-long run: renewal failures are logged; the fence (the owner
        # record's token, checked before every marker) stops this run only if another one really took the root
        with concurrency(name, occupy=1, lease_duration=60, strict=True, raise_on_lease_renewal_failure=False):
            lock = _take(root, f"prefect:{name}", flow_run_id)
            try:
                yield lock
            finally:
                _release(lock)
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
                    log.warning(f"output root {root} is in use by another run; waiting ({path})")
                    warned += wait_log_s
                time.sleep(0.5)
        try:
            lock = _take(root, f"file:{path}", flow_run_id)
            try:
                yield lock
            finally:
                _release(lock)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def owner_record(output_root: str) -> dict | None:
    uri = join(normalise_root(output_root), *OWNER)
    return read_json(uri) if exists(uri) else None

