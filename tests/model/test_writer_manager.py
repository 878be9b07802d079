"""The checkpoint writer's manager process survives stop signals that reach the whole process group while it is
still starting (a scheduler's time-limit SIGUSR1 arriving as the trainer starts it used to kill it: the save on the
way out then failed with EOFError and the job lost its progress)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

SCRIPT = textwrap.dedent("""
    import os, signal, threading, time
    got = []
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, lambda s, f: got.append(s))
    done = threading.Event()

    def storm():  # the job's whole process group is signalled, over and over, while the manager starts
        while not done.is_set():
            os.killpg(0, signal.SIGUSR1)
            os.killpg(0, signal.SIGTERM)
            time.sleep(0.002)

    from megatron.core.dist_checkpointing.strategies import filesystem_async
    from model import checkpoint
    t = threading.Thread(target=storm, daemon=True)
    t.start()
    checkpoint.protect_writer()
    time.sleep(0.3)
    done.set()
    t.join()
    q = filesystem_async._results_queue
    q.put("alive")
    assert q.get(timeout=10) == "alive"
    assert checkpoint._writer_manager._process.is_alive()
    assert got, "the trainer's own handlers never ran"
    print("ok", len(got))
""")


def test_writer_manager_survives_a_signal_storm_during_its_start():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300,
                         start_new_session=True)
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stdout[-2000:] + out.stderr[-3000:]
