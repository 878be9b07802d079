"""Stopping a run cleanly: SIGTERM, SIGINT and SIGUSR1 (what `scancel`, a preempting scheduler, `kill` and Ctrl-C
send) ask running jobs to save a checkpoint and exit (tasks/core/jobs.py forwards the signal, then waits the
stage's grace period). With no job running the run stops at once. Either way it ends with `RunStopped`, which
Prefect records as Crashed (or Cancelled, when the stop is a cancellation from Prefect), the output-root lock is
released on the way out, and the next run resumes from the newest checkpoint.

Installed by the CLI before the flow starts and again inside the flow (Prefect installs its own SIGTERM handler
when a flow run starts). The temporary Prefect API server of an embedded run is started in its own session, so a
signal to the run's process group leaves it up long enough to record the run's final state (Prefect stops it at
exit); one orphaned by a kill -9 is stopped by the next command (`reap_orphan_servers`).
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from pathlib import Path

from tasks.core import jobs

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
log = logging.getLogger("keel")


def _handler(signum, frame) -> None:
    first = not jobs.STOP.is_set()
    jobs.request_stop(signum)
    name = signal.Signals(signum).name
    if first:
        log.warning(f"{name} received: stopping the run"
                    + (" (the running job saves a checkpoint first)" if jobs.running() else ""))
    if not jobs.running():
        raise jobs.RunStopped(f"stopped by {name}", signum)


def install() -> bool:
    """Route stop signals to `_handler` (main thread only); True when installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in SIGNALS:
        signal.signal(sig, _handler)
    return True


def cancelled_from_prefect() -> bool:
    """True when this stop is a cancellation delivered by a Prefect runner/worker (not a plain signal)."""
    try:
        from prefect._internal.control_listener import get_intent

        return get_intent() == "cancel"
    except ImportError:
        return False


def isolate_ephemeral_server() -> None:
    """Start Prefect's temporary API server (if this process starts one) in a session of its own."""
    from prefect.server.api import server

    if getattr(server.SubprocessASGIServer, "_keel_isolated", False):
        return
    original = server.SubprocessASGIServer._run_uvicorn_command

    def run_in_own_session(self):
        popen = subprocess.Popen

        def own_session(*args, **kwargs):
            kwargs.setdefault("start_new_session", True)
            return popen(*args, **kwargs)

        server.subprocess.Popen = own_session
        try:
            return original(self)
        finally:
            server.subprocess.Popen = popen

    server.SubprocessASGIServer._run_uvicorn_command = run_in_own_session
    server.SubprocessASGIServer._keel_isolated = True


def reap_orphan_servers(prefect_home: str | None = None) -> list[int]:
    """Stop temporary Prefect servers (uvicorn on a random port) whose `keel run` died: orphaned (parent is init)
    ephemeral servers of this Prefect home. Returns their PIDs."""
    import psutil

    home = str(Path(prefect_home or os.environ.get("PREFECT_HOME", "")).resolve()) if (
        prefect_home or os.environ.get("PREFECT_HOME")) else None
    reaped = []
    for p in psutil.process_iter(["pid", "ppid", "cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if "prefect.server.api.server:create_app" not in cmd or p.info["ppid"] != 1:
                continue
            env = p.environ()
            if env.get("PREFECT__SERVER_EPHEMERAL") != "1":
                continue
            if home and str(Path(env.get("PREFECT_HOME", "")).resolve()) != home:
                continue
            p.terminate()
            reaped.append(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for pid in reaped:
        log.warning(f"stopped an orphaned temporary Prefect server (pid {pid}) left by a killed run")
    return reaped
