"""Child processes of stages (training, evaluation, `sbatch`, `kubectl`): started in their own session, output
streamed line by line to a callback and a log file, the whole process tree killed on failure or timeout.

The flow process never imports torch: a stage writes a typed job file, starts the job here, and reads its result.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Callable

NOISE = ("UserWarning: Transformer Engine and Apex are not installed", "warnings.warn(",
         "Setting OMP_NUM_THREADS", "*****")


class JobFailed(RuntimeError):
    """A launched job exited non-zero; the message carries the tail of its log."""


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


def torchrun_cmd(module: str, config_path: str, nproc: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", module, "--config", config_path]


def python_cmd(module: str, config_path: str) -> list[str]:
    return [sys.executable, "-m", module, "--config", config_path]


def run_job(cmd: list[str], log: Callable[[str], None], timeout_s: float, log_path: str | None = None) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("PREFECT_API_URL", None) if os.environ.get("KEEL_ISOLATE_JOBS") else None
    tail: list[str] = []
    start = time.monotonic()
    logf = open(log_path, "a") if log_path else None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if logf:
                logf.write(line + "\n")
            tail = (tail + [line])[-40:]
            if line and not any(n in line for n in NOISE):
                log(line)
            if time.monotonic() - start > timeout_s:
                raise TimeoutError(f"job exceeded {timeout_s}s")
        code = proc.wait()
    except BaseException:
        kill_tree(proc.pid)
        proc.wait()
        raise
    finally:
        if logf:
            logf.close()
    if code != 0:
        raise JobFailed(f"{' '.join(cmd[2:5])}... exited with {code}:\n" + "\n".join(tail))
