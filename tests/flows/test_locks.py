"""One run per output root: a second holder waits until the first releases (or dies); a fence stops a writer whose
lock was taken over; the previous holder's flow run, if it died, is marked Crashed; lock names are normalised."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from flows.locks import LockLost, lock_name, normalise_root, output_root_lock, owner_record
from tests.conftest import REPO

HOLDER = """
import sys, time
from pathlib import Path
from flows.locks import output_root_lock
with output_root_lock(sys.argv[1]):
    Path(sys.argv[2]).write_text("held")
    time.sleep(600)
"""


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    monkeypatch.setenv("KEEL_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setattr("flows.locks._api_server", lambda: False)  # embedded mode: the OS file lock


def test_second_run_on_the_same_root_waits_until_the_holder_dies(tmp_path, embedded):
    flag, root = tmp_path / "held", tmp_path / "runs"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), str(flag)],
                              env={**os.environ, "KEEL_LOCK_DIR": str(tmp_path / "locks")}, cwd=REPO)
    try:
        deadline = time.time() + 60
        while not flag.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert flag.exists()
        got = threading.Event()

        def second():
            with output_root_lock(str(root) + "//"):  # the same root spelled differently
                got.set()

        t = threading.Thread(target=second, daemon=True)
        t.start()
        assert not got.wait(1.5), "the same output root must not be taken twice"
        with output_root_lock(str(tmp_path / "other")):  # another root is free
            pass
        holder.send_signal(signal.SIGKILL)  # a crashed holder frees the root
        assert got.wait(10)
    finally:
        holder.kill()
        holder.wait()


def test_lock_names_are_normalised_uris(tmp_path):
    assert lock_name("s3://bucket/runs") == lock_name("S3://bucket//runs/") == lock_name("s3://bucket/runs/")
    assert lock_name("s3://bucket/runs") != lock_name("s3://bucket/other")
    assert normalise_root(str(tmp_path / "a" / ".." / "b") + "/") == str(tmp_path / "b")


def test_the_fence_stops_a_writer_whose_root_was_taken(tmp_path, embedded):
    root = str(tmp_path / "runs")
    with output_root_lock(root, "run-a") as a:
        a.check()  # still ours
        record = owner_record(root)
        assert record["flow_run_id"] == "run-a" and record["token"] == a.token and not record["released"]
        # another run took the root (this run's lease lapsed): its token is in the record now
        (tmp_path / "runs" / "_lock" / "owner.json").write_text(json.dumps({**record, "token": "theirs",
                                                                           "flow_run_id": "run-b"}))
        with pytest.raises(LockLost, match="taken by flow run run-b"):
            a.check()
        assert a.fence() == (str(tmp_path / "runs" / "_lock" / "owner.json"), a.token)
    with output_root_lock(root, "run-c") as c:
        assert c.token != a.token and owner_record(root)["flow_run_id"] == "run-c"
    assert owner_record(root)["released"] is True


def test_a_dead_holders_flow_run_is_marked_crashed_by_the_next_run(tmp_path, embedded, prefect_harness):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    @flow
    def placeholder():
        pass

    root = str(tmp_path / "runs")
    with get_client(sync_client=True) as client:
        dead = client.create_flow_run(placeholder, state=Running())
        with output_root_lock(root, str(dead.id)):
            pass
        record = owner_record(root)
        (tmp_path / "runs" / "_lock" / "owner.json").write_text(json.dumps({**record, "released": False}))  # died
        with output_root_lock(root, "the-next-run"):
            state = client.read_flow_run(dead.id).state
        assert state.type.value == "CRASHED" and "died while it held output root" in state.message
        finished = client.create_flow_run(placeholder, state=Running())
        with output_root_lock(root, str(finished.id)):
            pass  # released normally: the next run leaves it alone
        with output_root_lock(root, "another-run"):
            assert client.read_flow_run(finished.id).state.type.value == "RUNNING"


def test_with_a_prefect_server_the_root_is_a_global_concurrency_slot(tmp_path, prefect_harness):
    from prefect.client.orchestration import get_client

    root = str(tmp_path / "prefect-root")
    held, release, got = threading.Event(), threading.Event(), threading.Event()

    def first():
        with output_root_lock(root) as lock:
            assert lock.holder.startswith("prefect:")
            held.set()
            release.wait(60)

    def second():
        held.wait(60)
        with output_root_lock(root):
            got.set()

    threads = [threading.Thread(target=f, daemon=True) for f in (first, second)]
    for t in threads:
        t.start()
    assert held.wait(60)
    assert not got.wait(2.0), "a second run took a held output root"
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(lock_name(root)).limit == 1
    release.set()
    assert got.wait(60)
