"""Cluster launchers of a training job: a Slurm batch script or a Kubeflow PyTorchJob, rendered from the templates
under infra/ (recipe values are checked against strict patterns by tasks/train/config.py before they get here),
submitted, and waited for."""
from __future__ import annotations

import string
from pathlib import Path
from typing import Callable

from tasks.core.jobs import run_job

INFRA = Path(__file__).resolve().parents[2] / "infra"


def render_slurm(kind: str, config_path: str, work_dir: str, nodes: int, gpus_per_node: int, time_limit: str,
                 partition: str = "", account: str = "", python: str = "python") -> str:
    """A Slurm batch script running torchrun on every node (c10d rendezvous on the first node)."""
    tmpl = string.Template((INFRA / "slurm" / "train.sbatch.tmpl").read_text())
    return tmpl.substitute(kind=kind, config_path=config_path, work_dir=work_dir, nodes=nodes,
                           gpus_per_node=gpus_per_node, cpus_per_task=max(8, 8 * gpus_per_node),
                           time_limit=time_limit, python=python,
                           partition_line=f"#SBATCH --partition={partition}" if partition else "",
                           account_line=f"#SBATCH --account={account}" if account else "")


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
