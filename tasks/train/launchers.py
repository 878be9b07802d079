"""Cluster launchers of a training job: a Slurm batch script or a Kubeflow PyTorchJob, rendered from the templates
under infra/ (recipe values are checked by tasks/train/config.py when the recipe loads and again here),
submitted under a name unique to the attempt, watched, and cancelled (`scancel`, `kubectl delete`) on timeout,
hang, failure or when the run is asked to stop.

`run_slurm` / `run_kubernetes` return how the attempt ended; tasks/train/stage.py decides whether to resubmit
(time limit, preemption, node failure) and resumes from the newest checkpoint each time.
"""
from __future__ import annotations

import json
import re
import shlex
import string
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from tasks.core.jobs import STOP, JobFailed, JobStopped, remote_job
from tasks.train.config import IMAGE, SLURM_NAME, SLURM_TIME

INFRA = Path(__file__).resolve().parents[2] / "infra"
# Slurm states after which the same job, resubmitted, resumes from its checkpoint.
RESUBMIT = {"TIMEOUT", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"}
SLURM_ACTIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
                          "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"})
"""Slurm job states that are not an end: keep following (SIGNALING: Slurm is still signalling the job at its
time limit, before TIMEOUT)."""
POLL_S = 2.0


@dataclass(frozen=True)
class Outcome:
    job_id: str
    state: str
    """The scheduler's final state (Slurm JobState; for Kubernetes: Succeeded / Failed)."""
    exit_code: str


# What may be pasted into a launch file, whatever the caller checked before (defence in depth).
KIND = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
K8S_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")  # RFC 1123 label
K8S_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$")
SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./@+,=:-]*$")
"""An absolute path without whitespace, quotes, %, $ or control characters (Slurm reads #SBATCH lines itself)."""


def _check(name: str, value: str, pattern: re.Pattern, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"launcher field {name} = {value!r} is not {what}")
    return value


def _count(name: str, value: int, least: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"launcher field {name} = {value!r} is not an integer >= {least}")
    return value


def _seconds(name: str, value: float) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 10**7:
        raise ValueError(f"launcher field {name} = {value!r} is not a number of seconds")
    return int(value)


def _path(name: str, value: str) -> str:
    if not isinstance(value, str) or any(ord(c) < 32 or ord(c) == 127 for c in value) or not value.startswith("/"):
        raise ValueError(f"launcher field {name} = {value!r} is not an absolute path without control characters")
    return value


def render_slurm(kind: str, config_path: str, work_dir: str, nodes: int, procs_per_node: int, time_limit: str,
                 partition: str = "", account: str = "", python: str = "python", job_name: str = "",
                 gpus_per_node: int | None = None, cpus_per_task: int = 0, signal_lead_s: int = 120,
                 stop_timeout_s: int = 120) -> str:
    """A Slurm batch script running torchrun on every node (c10d rendezvous on the first node). Slurm sends
    SIGUSR1 `signal_lead_s` before the time limit: the trainers save a checkpoint and stop, and the job is
    resubmitted to resume.

    Every value is checked: names and the time limit against Slurm's shapes, counts as integers, the work folder
    (read by sbatch in an #SBATCH line) as a plain absolute path; the interpreter and config path are shell-quoted."""
    _check("kind", kind, KIND, "a stage name")
    gpus = procs_per_node if gpus_per_node is None else gpus_per_node
    for name, value in (("partition", partition), ("account", account)):
        if value:
            _check(name, value, SLURM_NAME, "a Slurm name (letters, digits and _ . , + -)")
    job_name = _check("job_name", job_name or f"keel-{kind}", SLURM_NAME, "a Slurm name (letters, digits and _ . , + -)")
    _check("time_limit", time_limit, SLURM_TIME, "a Slurm time ([D-]HH:MM:SS)")
    _check("work_dir", work_dir, SAFE_PATH, "an absolute path of letters, digits and _ . / @ + , = : - (no spaces, "
           "quotes, % or $) as Slurm needs for --output")
    python = python if python == "python" else _path("python", python)
    tmpl = string.Template((INFRA / "slurm" / "train.sbatch.tmpl").read_text())
    lines = [f"#SBATCH --partition={partition}" if partition else "", f"#SBATCH --account={account}" if account else "",
             f"#SBATCH --gpus-per-node={_count('gpus_per_node', gpus)}" if gpus else "",
             f"#SBATCH --cpus-per-task={_count('cpus_per_task', cpus_per_task)}" if cpus_per_task else ""]
    return tmpl.substitute(kind=kind, job_name=job_name, config_path=shlex.quote(_path("config_path", config_path)),
                           work_dir=work_dir, nodes=_count("nodes", nodes, 1),
                           procs_per_node=_count("procs_per_node", procs_per_node, 1), time_limit=time_limit,
                           python=shlex.quote(python), signal_lead=max(_seconds("signal_lead_s", signal_lead_s), 10),
                           stop_timeout=_seconds("stop_timeout_s", stop_timeout_s),
                           optional_lines="\n".join(x for x in lines if x))


def render_pytorchjob(kind: str, config_path: str, work_dir: str, nodes: int, gpus_per_node: int, image: str,
                      job_name: str, pvc: str = "keel-work", stop_timeout_s: int = 120) -> str:
    """A Kubeflow PyTorchJob manifest (one master + nodes-1 workers) named for this attempt; deleting it gives the
    pods `stop_timeout_s` (+30 s) to save a checkpoint.

    The template is parsed as YAML and values are put into the parsed structure, then dumped: a value can hold any
    character and stays one string (names and the image are still checked against Kubernetes' shapes)."""
    values = {"kind": _check("kind", kind, KIND, "a stage name"),
              "job_name": _check("job_name", job_name, K8S_NAME, "a Kubernetes name (RFC 1123 label)"),
              "pvc": _check("pvc", pvc, K8S_SUBDOMAIN, "a Kubernetes volume claim name"),
              "image": _check("image", image, IMAGE, "a container image reference (registry/name:tag)"),
              "config_path": _path("config_path", config_path), "work_dir": _path("work_dir", work_dir),
              "nodes": _count("nodes", nodes, 1), "gpus_per_node": _count("gpus_per_node", gpus_per_node),
              "workers": max(_count("nodes", nodes, 1) - 1, 0), "stop_timeout": _seconds("stop_timeout_s", stop_timeout_s),
              "grace": _seconds("stop_timeout_s", stop_timeout_s) + 30}
    doc = yaml.safe_load((INFRA / "k8s" / "pytorchjob.yaml.tmpl").read_text())
    return ("# keel training job for Kubeflow's training operator, rendered by tasks/train/launchers.py.\n"
            + yaml.safe_dump(_fill(doc, values), sort_keys=False, default_flow_style=None, width=120))


def _fill(node, values: dict):
    """`node` with "${name}" strings replaced by the value itself and ${name} inside longer strings substituted."""
    if isinstance(node, dict):
        return {_fill(k, values): _fill(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, values) for v in node]
    if isinstance(node, str) and "$" in node:
        whole = re.fullmatch(r"\$\{(\w+)\}", node)
        return values[whole.group(1)] if whole else string.Template(node).substitute(values)
    return node


def _sh(cmd: list[str], timeout: float = 60) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise JobFailed(f"{' '.join(cmd)} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-500:]}")
    return proc.stdout.strip()


def slurm_state(job_id: str) -> tuple[str, str]:
    """(state, exit code) of a job: squeue while it is known there, then scontrol."""
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=30)
    if out.returncode == 0 and out.stdout.strip():
        return out.stdout.strip().splitlines()[0], ""
    info = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30).stdout
    fields = dict(kv.split("=", 1) for kv in info.split() if "=" in kv)
    return fields.get("JobState", "UNKNOWN"), fields.get("ExitCode", "")


class _LogTail:
    """New lines of a file that another machine (the job) appends to."""

    def __init__(self, path: Path, log: Callable[[str], None]):
        self.path, self.log, self.pos = path, log, 0

    def pump(self) -> None:
        if not self.path.is_file():
            return
        with open(self.path, errors="replace") as f:
            f.seek(self.pos)
            for line in f.read().splitlines():
                if line.strip():
                    self.log(line)
            self.pos = f.tell()


def run_slurm(script: Path, log: Callable[[str], None], deadline: float, watchdog: Callable[[], str | None] | None,
              stop_timeout_s: float) -> Outcome:
    """Submit a batch script and follow it to its end. On timeout, hang, or a stop request the job is cancelled
    (a stop first gets SIGUSR1 so the trainers save, then `scancel` after `stop_timeout_s`)."""
    with remote_job(f"slurm:{script.name}"):  # from before submission: a stop signal never orphans the job
        job_id = _sh(["sbatch", "--parsable", str(script)]).split(";")[0]
        log(f"slurm job {job_id} submitted ({script.name})")
        return _follow_slurm(job_id, _LogTail(script.parent / f"slurm-{job_id}.log", log), deadline, watchdog,
                             stop_timeout_s)


def _follow_slurm(job_id: str, tail: "_LogTail", deadline: float, watchdog: Callable[[], str | None] | None,
                  stop_timeout_s: float) -> Outcome:
    stop_deadline = None
    try:
        while True:
            state, code = slurm_state(job_id)
            tail.pump()
            if state.split()[0] not in SLURM_ACTIVE:
                tail.pump()
                if STOP.is_set():
                    raise JobStopped(f"slurm job {job_id} stopped ({state})")
                return Outcome(job_id, state.split()[0], code)
            now = time.monotonic()
            if STOP.is_set():
                if stop_deadline is None:
                    stop_deadline = now + stop_timeout_s
                    subprocess.run(["scancel", "--signal=USR1", job_id], capture_output=True, timeout=30)
                elif now > stop_deadline:
                    raise JobStopped(f"slurm job {job_id} did not stop within {stop_timeout_s:g} s: cancelled")
            elif now > deadline:
                raise JobFailed(f"slurm job {job_id} exceeded the stage timeout: cancelled")
            elif state == "RUNNING" and watchdog:
                hung = watchdog()
                if hung:
                    raise JobFailed(f"slurm job {job_id} hung: {hung}; cancelled")
            time.sleep(POLL_S)
    except BaseException:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=30)
        raise


def run_kubernetes(manifest: Path, job_name: str, log: Callable[[str], None], deadline: float,
                   watchdog: Callable[[], str | None] | None, stop_timeout_s: float) -> Outcome:
    """Apply a PyTorchJob and follow its conditions; delete it on timeout, hang, failure or a stop request."""
    with remote_job(f"kubernetes:{job_name}"):
        try:
            _sh(["kubectl", "apply", "-f", str(manifest)])
        except BaseException:
            subprocess.run(["kubectl", "delete", "--wait=false", "-f", str(manifest)], capture_output=True, timeout=60)
            raise
        log(f"pytorchjob {job_name} applied")
        return _follow_kubernetes(manifest, job_name, deadline, watchdog)


def _follow_kubernetes(manifest: Path, job_name: str, deadline: float,
                       watchdog: Callable[[], str | None] | None) -> Outcome:
    try:
        while True:
            raw = _sh(["kubectl", "get", "pytorchjob", job_name, "-o", "json"])
            conditions = json.loads(raw).get("status", {}).get("conditions", [])
            last = conditions[-1]["type"] if conditions else "Created"
            if last in ("Succeeded", "Failed"):
                return Outcome(job_name, last, "")
            now = time.monotonic()
            if STOP.is_set():
                raise JobStopped(f"pytorchjob {job_name}: the run is stopping; deleted")
            if now > deadline:
                raise JobFailed(f"pytorchjob {job_name} exceeded the stage timeout: deleted")
            hung = watchdog() if watchdog and last == "Running" else None
            if hung:
                raise JobFailed(f"pytorchjob {job_name} hung: {hung}; deleted")
            time.sleep(POLL_S)
    except BaseException:
        subprocess.run(["kubectl", "delete", "--wait=false", "-f", str(manifest)], capture_output=True, timeout=60)
        raise
