"""One run per output root: a second holder waits until the first releases (or dies)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from flows.locks import lock_name, output_root_lock

HOLDER = """
import sys, time
from pathlib import Path
from flows.locks import output_root_lock
with output_root_lock(sys.argv[1]):
    Path(sys.argv[2]).write_text("held")
    time.sleep(600)
"""


def test_second_run_on_the_same_root_waits_until_the_holder_dies(tmp_path, monkeypatch):
    monkeypatch.setenv("KEEL_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setattr("flows.locks._api_server", lambda: False)  # embedded mode: the OS file lock
    flag = tmp_path / "held"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "s3://bucket/runs", str(flag)],
                              env={**os.environ, "KEEL_LOCK_DIR": str(tmp_path / "locks")},
                              cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        deadline = time.time() + 60
        while not flag.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert flag.exists()
        got = threading.Event()

        def second():
            with output_root_lock("s3://bucket/runs"):
                got.set()

        t = threading.Thread(target=second, daemon=True)
        t.start()
        assert not got.wait(1.5), "the same output root must not be taken twice"
        with output_root_lock("s3://bucket/other"):  # another root is free
            pass
        holder.send_signal(signal.SIGKILL)  # a crashed holder frees the root
        assert got.wait(10)
    finally:
        holder.kill()
        holder.wait()
    assert lock_name("s3://bucket/runs") != lock_name("s3://bucket/other")


def test_with_a_prefect_server_the_root_is_a_global_concurrency_slot(prefect_harness):
    from prefect.client.orchestration import get_client

    root = "s3://bucket/prefect-root"
    held, release, got = threading.Event(), threading.Event(), threading.Event()

    def first():
        with output_root_lock(root) as how:
            assert how.startswith("prefect:")
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
