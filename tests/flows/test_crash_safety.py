"""A long pretrain survives what a shared cluster does to it, through `keel run` itself: SIGTERM to the whole
process group (a checkpoint newer than the periodic ones, a prompt exit, the flow run Crashed, the lock released),
then kill -9 of the whole process group (no orphan trainer, the dead run marked Crashed by the next one), and each
re-run resumes; the final loss curve equals an uninterrupted run's."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from flows.locks import owner_record
from model.checkpoint import newest_valid_step
from tests.conftest import LONG_RUN_DATA, LONG_RUN_IDS, REPO, start_from, write_recipe

pytestmark = pytest.mark.slow

SETS = [*LONG_RUN_DATA, "pretrain.steps=250", "pretrain.save_interval=20", "pretrain.save_interval_s=0", "pretrain.warmup_steps=5",
        "pretrain.stop_timeout_s=40"]


def _keel(recipe: Path, env: dict) -> subprocess.Popen:
    args = [sys.executable, "-m", "flows.cli", "run", "--recipe", str(recipe), "--until", "pretrain", "--json"]
    for s in SETS:
        args += ["--set", s]
    return subprocess.Popen(args, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _ckpt_dir(root: Path) -> Path | None:
    found = sorted((root / "checkpoints" / "pretrain").glob("*"))
    return found[0] if found else None


def _steps_done(root: Path) -> int:
    d = _ckpt_dir(root)
    m = d / "metrics.jsonl" if d else None
    return len(m.read_text().splitlines()) if m and m.exists() else 0


def _wait_steps(proc: subprocess.Popen, root: Path, steps: int, timeout: float = 420) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if _steps_done(root) >= steps:
            return
        time.sleep(0.1)
    out = proc.stdout.read() if proc.poll() is not None else ""
    raise AssertionError(f"pretrain never reached step {steps}: {out[-3000:]}")


def _trainers(ckpt: Path) -> list:
    return [p for p in psutil.process_iter(["cmdline"]) if "model.train" in " ".join(p.info["cmdline"] or [])
            and str(ckpt.parent.parent.parent) in " ".join(p.info["cmdline"] or [])]


def _flow_run_state(run_id: str, env: dict) -> str:
    """The flow run's state type as the run's Prefect database holds it (read directly: starting a temporary
    server to ask would take longer than the question)."""
    import sqlite3

    db = Path(env["PREFECT_HOME"]) / "prefect.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        row = con.execute("SELECT state_type FROM flow_run WHERE id = ?", (run_id,)).fetchone()
    return row[0] if row else "unknown"


def test_sigterm_then_kill_9_during_pretrain_and_each_rerun_resumes(tmp_path, demo_corpus, long_run_data):
    recipe = write_recipe(tmp_path, demo_corpus, ids=LONG_RUN_IDS)
    root = tmp_path / "runs"
    start_from(long_run_data, root)
    env = {**os.environ, "KEEL_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "home" / "prefect"),
           "KEEL_LOCK_DIR": str(tmp_path / "locks")}
    env.pop("PREFECT_API_URL", None)

    # 1. SIGTERM to the whole process group (what scancel and a preempting scheduler do)
    proc = _keel(recipe, env)
    _wait_steps(proc, root, 30)
    ckpt = _ckpt_dir(root)
    periodic = newest_valid_step(ckpt)
    first_run = owner_record(str(root))["flow_run_id"]
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    took = time.monotonic() - t0
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert took < 60, took  # the bound for the demo-sized model
    stopped = json.loads((ckpt / "stopped.json").read_text())
    assert stopped["signal"] == "SIGTERM" and stopped["step"] > periodic >= 20, (stopped, periodic)
    assert newest_valid_step(ckpt) == stopped["step"]  # saved on the way out
    assert owner_record(str(root))["released"] is True  # the lock was let go
    assert _trainers(ckpt) == []
    assert _flow_run_state(first_run, env) in ("CRASHED", "CANCELLED"), "a stopped run must not stay Running"

    # 2. resume, then kill -9 of the whole process group after at least two more checkpoints
    proc = _keel(recipe, env)
    _wait_steps(proc, root, stopped["step"] + 45)
    second_run = owner_record(str(root))["flow_run_id"]
    before_kill = newest_valid_step(ckpt)
    assert before_kill >= stopped["step"] + 25
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.time() + 60
    while _trainers(ckpt) and time.time() < deadline:  # the orphaned trainer notices and stops
        time.sleep(0.5)
    assert _trainers(ckpt) == [], "the trainer outlived its pipeline"

    # 3. the next run resumes, finishes, and marks the dead run Crashed
    proc = _keel(recipe, env)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    res = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    assert res["resumed_from_step"]["pretrain"] >= before_kill > 0
    assert _flow_run_state(second_run, env) == "CRASHED"
    assert not [p for p in psutil.process_iter(["ppid", "cmdline"]) if p.info["ppid"] == 1 and
                "prefect.server.api.server:create_app" in " ".join(p.info["cmdline"] or []) and
                p.environ().get("PREFECT_HOME") == env["PREFECT_HOME"]]

    # the curve, across three processes, equals one uninterrupted run of the same job
    job = json.loads((root / "pretrain" / res["stage_hashes"]["pretrain"] / "pretrain.json").read_text())
    ref = tmp_path / "reference"
    job.update(out_dir=str(ref), metrics_path=f"{ref}.metrics.jsonl", result_path=f"{ref}.result.json",
               heartbeat_dir=f"{ref}.hb", stopped_path=f"{ref}.stopped.json", fence_path="", fence_token="")
    (tmp_path / "ref.json").write_text(json.dumps(job))
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                          "-m", "model.train", "--config", str(tmp_path / "ref.json")], cwd=REPO, capture_output=True,
                         text=True, timeout=900, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert run.returncode == 0, run.stderr[-3000:]

    def losses(path):
        return {r["step"]: r["loss"] for r in map(json.loads, Path(path).read_text().splitlines())}

    want, got = losses(f"{ref}.metrics.jsonl"), losses(ckpt / "metrics.jsonl")
    assert sorted(got) == list(range(1, 251))
    assert max(abs(got[s] - want[s]) for s in want) < 1e-5
