"""Launch training/evaluation processes: `torchrun` locally with log lines streamed to a callback.

The flow process never imports torch: it writes a JSON config, starts the job, streams its output and fails
on a non-zero exit (or on timeout, after killing the whole process group).
"""
from __future__ import annotations

import os
import signal
import string
import subprocess
import sys
import time
from pathlib import Path
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


INFRA = Path(__file__).resolve().parent.parent / "infra"


def render_slurm(kind: str, config_path: str, work_dir: str, nodes: int, gpus_per_node: int,
                 partition: str = "", time_limit: str = "24:00:00", python: str = "python") -> str:
    """A Slurm batch script running torchrun on every node (c10d rendezvous on the first node)."""
    tmpl = string.Template((INFRA / "slurm" / "train.sbatch.tmpl").read_text())
    return tmpl.substitute(kind=kind, config_path=config_path, work_dir=work_dir, nodes=nodes,
                           gpus_per_node=gpus_per_node, cpus_per_task=max(8, 8 * gpus_per_node),
                           time_limit=time_limit, python=python,
                           partition_line=f"#SBATCH --partition={partition}" if partition else "")


def render_pytorchjob(kind: str, config_path: str, work_dir: str, nodes: int, gpus_per_node: int, image: str,
                      pvc: str = "keel-work") -> str:
    """A Kubeflow PyTorchJob manifest (one master + nodes-1 workers)."""
    import hashlib

    tmpl = string.Template((INFRA / "k8s" / "pytorchjob.yaml.tmpl").read_text())
    return tmpl.substitute(kind=kind, config_path=config_path, work_dir=work_dir, nodes=nodes,
                           gpus_per_node=gpus_per_node, image=image, pvc=pvc, workers=max(nodes - 1, 0),
                           job_suffix=hashlib.sha256(config_path.encode()).hexdigest()[:8])


def submit(launcher: str, rendered_path: str, log: Callable[[str], None], timeout_s: float) -> None:
    """Submit a rendered job and block until it ends (sbatch --wait / kubectl wait)."""
    if launcher == "slurm":
        run_job(["sbatch", "--wait", rendered_path], log, timeout_s)
    elif launcher == "kubernetes":
        run_job(["kubectl", "apply", "-f", rendered_path], log, 120)
        run_job(["kubectl", "wait", "--for=condition=Succeeded", f"--timeout={int(timeout_s)}s", "-f", rendered_path],
                log, timeout_s + 60)
    else:
        raise ValueError(f"unknown launcher {launcher!r}; use local, slurm or kubernetes")
