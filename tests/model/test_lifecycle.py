"""A training job's life with real processes and signals: SIGTERM saves a checkpoint and exits in bounded time, the
next run resumes; a corrupt newest checkpoint is skipped; a stopped rank is found by the watchdog and the whole
job is killed; checkpoints are also taken by time."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from model.checkpoint import MANIFEST, newest_valid_step, step_dir, steps_on_disk, verify
from model.lifecycle import HangWatch
from tasks.core.jobs import JobFailed, run_job, torchrun_cmd
from tests.model.test_training import _config, _losses, _run, _with_train, shards  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


def _wait_for_step(cfg: Path, step: int, timeout: float = 300) -> None:
    metrics = Path(json.loads(cfg.read_text())["metrics_path"])
    deadline = time.time() + timeout
    while time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= step:
            return
        time.sleep(0.05)
    raise AssertionError(f"step {step} never reached")


def test_sigterm_saves_a_checkpoint_exits_promptly_and_the_next_run_resumes(tmp_path, shards):
    full = _config(tmp_path, "full", shards, steps=30)
    _run(full, 1)
    cfg = _config(tmp_path, "stopped", shards, steps=30, save_interval=100)  # no periodic checkpoint before the end
    proc = subprocess.Popen(torchrun_cmd("model.train", str(cfg), 1, stop_timeout_s=60), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONWARNINGS": "ignore"},
                            start_new_session=True)
    _wait_for_step(cfg, 8)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)  # to torchrun, as a scheduler would: it forwards to the trainer
    proc.wait(timeout=60)
    took = time.monotonic() - t0
    stopped = json.loads(Path(json.loads(cfg.read_text())["stopped_path"]).read_text())
    assert stopped["signal"] == "SIGTERM" and stopped["step"] >= 8, stopped
    assert took < 60, took
    assert newest_valid_step(tmp_path / "stopped") == stopped["step"]  # saved on the way out
    assert not Path(json.loads(cfg.read_text())["result_path"]).exists()
    _run(cfg, 1)
    result = json.loads(Path(json.loads(cfg.read_text())["result_path"]).read_text())
    assert result["resumed_from"] == stopped["step"]
    ref, got = _losses(full), _losses(cfg)
    assert all(abs(got[s] - ref[s]) < 1e-5 for s in got), (ref, got)


def test_a_truncated_newest_checkpoint_is_skipped_for_the_previous_one(tmp_path, shards):
    cfg = _config(tmp_path, "run", shards, steps=4, save_interval=2)
    _run(cfg, 1)
    root = tmp_path / "run"
    assert steps_on_disk(root) == [4, 2] and verify(step_dir(root, 4)) is None
    victim = max((p for p in step_dir(root, 4).rglob("*") if p.is_file() and p.name != MANIFEST),
                 key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    assert "bytes, the manifest says" in verify(step_dir(root, 4))
    warnings = []
    assert newest_valid_step(root, warn=warnings.append) == 2 and "skipped" in warnings[0]
    (step_dir(root, 2) / MANIFEST).unlink()  # a save that never finished has no manifest
    assert newest_valid_step(root, warn=warnings.append) is None
    (root / "iter_0000006").mkdir()  # a half-made directory
    assert newest_valid_step(root, warn=warnings.append) is None


def test_checkpoints_are_also_taken_by_time_and_pruned(tmp_path, shards):
    cfg = _with_train(_config(tmp_path, "timed", shards, steps=12, save_interval=0), save_interval_s=0.001,
                      keep_checkpoints=2)
    _run(cfg, 1)
    assert steps_on_disk(tmp_path / "timed") == [12, 11]  # one after every step by the clock, the newest 2 kept


def _gone(pid: int, within_s: float = 5) -> bool:
    deadline = time.time() + within_s
    while time.time() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_a_stopped_rank_is_found_by_the_watchdog_and_the_job_killed(tmp_path, shards):
    cfg = _config(tmp_path, "hung", shards, steps=400)
    job = json.loads(cfg.read_text())
    watch = HangWatch(job["heartbeat_dir"], ranks=2, timeout_s=20)
    lines: list[str] = []
    stopped: dict = {}

    def watchdog():
        beats = watch.beats()
        if not stopped and len(beats) == 2 and min(b["step"] for b in beats.values()) >= 3:
            stopped["pid"] = beats[1]["pid"]
            os.kill(stopped["pid"], signal.SIGSTOP)  # rank 1 freezes; rank 0 waits for it in a collective
        return watch()

    with pytest.raises(JobFailed) as exc:
        run_job(torchrun_cmd("model.train", str(cfg), 2), lines.append, timeout_s=600, watchdog=watchdog)
    message = str(exc.value)
    assert "job hung: no training step completed" in message and f"rank 1 (pid {stopped['pid']}) silent" in message
    assert _gone(stopped["pid"]), psutil.Process(stopped["pid"]).status()  # SIGKILLed: dead (or a zombie) at once
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(cfg) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == [], leftovers
