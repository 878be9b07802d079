"""`launcher = "slurm"` for real, against a single-node Slurm on this machine (tests/slurm.py): a pretrain through
sbatch + torchrun; a job warned of its time limit saves, ends and is resubmitted, resuming, until done; a job killed by
`scancel` and then the stage re-run resumes; stopping the run cancels its Slurm job after it saved a checkpoint
(that the next run resumes from such a checkpoint: tests/flows/test_crash_safety.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from model.checkpoint import newest_valid_step
from tests.conftest import LONG_RUN_DATA, LONG_RUN_IDS, REPO, start_from, write_recipe

pytestmark = pytest.mark.slow

BASE = [*LONG_RUN_DATA, "pretrain.launcher=slurm", "pretrain.gpus_per_node=0", "pretrain.save_interval_s=0", "pretrain.warmup_steps=5",
        "pretrain.stop_timeout_s=20", "pretrain.hang_timeout_s=300"]


def _keel(recipe: Path, tmp_path: Path, sets: list[str], api: str) -> subprocess.Popen:
    env = {**os.environ, "KEEL_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "home" / "prefect"),
           "KEEL_LOCK_DIR": str(tmp_path / "locks"), "PREFECT_API_URL": api}
    args = [sys.executable, "-m", "flows.cli", "run", "--recipe", str(recipe), "--until", "pretrain", "--json"]
    for s in BASE + sets:
        args += ["--set", s]
    return subprocess.Popen(args, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _result(proc: subprocess.Popen, timeout: float = 900) -> dict:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def _ckpt(root: Path) -> Path | None:
    found = sorted((root / "checkpoints" / "pretrain").glob("*"))
    return found[0] if found else None


def _wait_checkpoint(proc: subprocess.Popen, root: Path, after: int = 0, timeout: float = 600) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        d = _ckpt(root)
        step = newest_valid_step(d, warn=lambda m: None) if d else None
        if step is not None and step > after:
            return step
        time.sleep(0.5)
    raise AssertionError(f"no checkpoint after step {after}: {proc.stdout.read()[-3000:] if proc.poll() is not None else ''}")


def _wait_step(proc: subprocess.Popen, root: Path, step: int, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        d = _ckpt(root)
        if d and (d / "metrics.jsonl").exists() and len((d / "metrics.jsonl").read_text().splitlines()) >= step:
            return
        time.sleep(0.2)
    raise AssertionError(f"step {step} never reached: {proc.stdout.read()[-3000:] if proc.poll() is not None else ''}")


def test_time_limit_warning_resubmits_and_resumes_until_done(tmp_path, demo_corpus, slurm, long_run_data,
                                                             prefect_api):
    """Slurm's warning before a time limit (`#SBATCH --signal=USR1@<lead>`: SIGUSR1 to the job's steps) is
    delivered here with `scancel --signal=USR1`, as slurmctld does at the warning time: a real time limit is a
    minute at least, and whether a short run outlasts it depends on the machine's speed."""
    recipe = write_recipe(tmp_path, demo_corpus, ids=LONG_RUN_IDS)
    root = tmp_path / "runs"
    start_from(long_run_data, root)
    proc = _keel(recipe, tmp_path, ["pretrain.steps=1000", "pretrain.save_interval=250", "pretrain.max_resubmits=2"],
                 prefect_api)
    _wait_step(proc, root, 60)
    (job,) = slurm.jobs_named("keel-pretrain")
    subprocess.run(["scancel", "--signal=USR1", job], check=True)
    res = _result(proc)
    assert res["stage_status"]["pretrain"] == "completed"
    assert res["attempts"]["pretrain"] == 2 and 60 <= res["resumed_from_step"]["pretrain"] < 250, res
    work = root / "pretrain" / res["stage_hashes"]["pretrain"]
    assert len(list(work.glob("slurm-*.log"))) == 2
    steps = [json.loads(line)["step"] for line in (_ckpt(root) / "metrics.jsonl").read_text().splitlines()]
    assert sorted(steps) == list(range(1, 1001))  # each step once: the second job went on from the saved step
    assert slurm.jobs_named("keel-pretrain") == []


def test_scancel_then_rerun_resumes_and_stopping_the_run_cancels_the_job(tmp_path, demo_corpus, slurm, long_run_data,
                                                                          prefect_api):
    recipe = write_recipe(tmp_path, demo_corpus, ids=LONG_RUN_IDS)
    sets = ["pretrain.steps=800", "pretrain.save_interval=100", "pretrain.time_limit=0:30:00"]
    root = tmp_path / "runs"
    start_from(long_run_data, root)

    # someone cancels the job: the stage fails (no resubmission of a cancelled job), the checkpoint stays
    proc = _keel(recipe, tmp_path, sets, prefect_api)
    first = _wait_checkpoint(proc, root)
    (job,) = slurm.jobs_named("keel-pretrain")
    subprocess.run(["scancel", job], check=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "CANCELLED" in out, out[-3000:]
    kept = newest_valid_step(_ckpt(root))  # scancel's SIGTERM let the trainer save once more
    assert kept >= first

    # the re-run resumes; then the run itself is stopped (SIGTERM, as a cancellation or preemption delivers)
    proc = _keel(recipe, tmp_path, sets, prefect_api)
    second = _wait_checkpoint(proc, root, after=kept)
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert slurm.jobs_named("keel-pretrain") == []  # the job did not outlive the run
    stopped = json.loads((_ckpt(root) / "stopped.json").read_text())
    assert stopped["step"] >= second > kept and newest_valid_step(_ckpt(root)) == stopped["step"]
