"""Child processes of stages (training, evaluation, `sbatch`, `kubectl`): started in their own session, output
streamed line by line to a callback and a log file, watched, and stopped or killed as a whole.

The flow process never imports torch: a stage writes a typed job file, starts the job here, and reads its result.
`run_job` watches three clocks independently of what the job prints: the overall timeout, a watchdog callable
(e.g. a hang detector over heartbeat files) and, once the run was asked to stop (`request_stop`, called by the
CLI's signal handler), the grace period for the job to save and exit. Failures kill the whole process tree.
"""
from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Callable

NOISE = ("UserWarning: Transformer Engine and Apex are not installed", "warnings.warn(",
         "Setting OMP_NUM_THREADS", "*****")

STOP = threading.Event()
"""Set when this process was asked to stop (SIGTERM, SIGINT, SIGUSR1): running jobs get the signal to save and exit,
and no new job starts."""
_stop_signal = signal.SIGTERM
_running: set = set()
"""Local job processes (Popen), and names of remote jobs being watched."""
_lock = threading.Lock()


class JobFailed(RuntimeError):
    """A launched job exited non-zero, timed out or hung; the message carries the reason and the tail of its log."""


class RunStopped(BaseException):
    """The run was asked to stop (a signal). A BaseException: never retried, and Prefect records the run Crashed
    rather than leaving it Running."""

    def __init__(self, message: str, signum: int = signal.SIGTERM):
        super().__init__(message)
        self.signum = signum


class JobStopped(RunStopped):
    """The run was asked to stop while a job ran: the job saved what it could and ended (or was killed after its
    grace period)."""


def request_stop(signum: int = signal.SIGTERM) -> None:
    """Ask every running job to stop (forwarded to each job's top process, e.g. torchrun, which forwards it to its
    workers), and refuse new ones."""
    global _stop_signal
    _stop_signal = signal.Signals(signum)
    STOP.set()
    with _lock:
        procs = [p for p in _running if isinstance(p, subprocess.Popen)]
    for p in procs:
        try:
            os.kill(p.pid, _stop_signal)
        except ProcessLookupError:
            pass


@contextlib.contextmanager
def remote_job(name: str):
    """Mark a job that runs elsewhere (a Slurm or Kubernetes job this process watches) as running: a stop signal
    then lets the watcher ask the job to save and end, instead of interrupting the watcher."""
    token = f"remote:{name}"
    with _lock:
        _running.add(token)
    try:
        yield
    finally:
        with _lock:
            _running.discard(token)


def running() -> bool:
    """Is a job running in this process right now?"""
    with _lock:
        return bool(_running)


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a process and all its descendants (torchrun starts its workers in their own sessions)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def torchrun_cmd(module: str, config_path: str, nproc: int, stop_timeout_s: float = 30) -> list[str]:
    """torchrun forwards SIGTERM/SIGINT/SIGUSR1 to its workers and gives them `stop_timeout_s` to save and exit."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1", f"--shutdown-timeout={int(stop_timeout_s)}",
            "-m", module, "--config", config_path]


def python_cmd(module: str, config_path: str) -> list[str]:
    return [sys.executable, "-m", module, "--config", config_path]


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line.rstrip())
    lines.put(None)


def run_job(cmd: list[str], log: Callable[[str], None], timeout_s: float, log_path: str | None = None,
            watchdog: Callable[[], str | None] | None = None, stop_timeout_s: float = 60, poll_s: float = 0.5) -> None:
    """Run `cmd` to completion. Raises JobFailed (non-zero exit, timeout, watchdog message) or JobStopped (the run
    was asked to stop while it ran); the process tree never outlives this call."""
    if STOP.is_set():
        raise JobStopped("the run is stopping: job not started", _stop_signal)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore", "KEEL_LAUNCHER_PID": str(os.getpid())}
    if os.environ.get("KEEL_ISOLATE_JOBS"):
        env.pop("PREFECT_API_URL", None)
    tail: list[str] = []
    start = time.monotonic()
    logf = open(log_path, "a") if log_path else None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    reader.start()
    with _lock:
        _running.add(proc)
    stop_deadline = None
    try:
        if STOP.is_set():  # asked to stop while starting
            os.kill(proc.pid, _stop_signal)
        done = False
        while not done:
            try:
                line = lines.get(timeout=poll_s)
            except queue.Empty:
                line = ""
            while line is not None:
                if line:
                    if logf:
                        logf.write(line + "\n")
                    tail = (tail + [line])[-40:]
                    if not any(n in line for n in NOISE):
                        log(line)
                try:
                    line = lines.get_nowait()
                except queue.Empty:
                    break
            else:
                done = True
            if logf:
                logf.flush()
            if done:
                break
            now = time.monotonic()
            if STOP.is_set():
                stop_deadline = stop_deadline or now + stop_timeout_s
                if now > stop_deadline:
                    raise JobStopped(f"the job did not stop within {stop_timeout_s:g} s of the stop signal: killed",
                                     _stop_signal)
                continue
            if now - start > timeout_s:
                raise JobFailed(f"job exceeded its timeout of {timeout_s:g} s: killed\n" + "\n".join(tail[-10:]))
            hung = watchdog() if watchdog else None
            if hung:
                raise JobFailed(f"job hung: {hung}; killed\n" + "\n".join(tail[-10:]))
        code = proc.wait()
    except BaseException:
        kill_tree(proc.pid)
        proc.wait()
        raise
    finally:
        with _lock:
            _running.discard(proc)
        if logf:
            logf.close()
    if STOP.is_set():
        raise JobStopped(f"job ended after the stop signal (exit {code})", _stop_signal)
    if code != 0:
        raise JobFailed(f"{' '.join(cmd[2:5])}... exited with {code}:\n" + "\n".join(tail))
