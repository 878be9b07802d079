"""How a training process lives and stops: preemption signals and heartbeats.

- `StopRequest` turns SIGTERM, SIGINT and SIGUSR1 (what `scancel`, a preempting scheduler, Slurm's
  `--signal=USR1@<s>` and Ctrl-C send) into a flag. The training loop checks it after every step, agreeing
  across ranks, then saves a checkpoint and exits cleanly with a `stopped.json` saying why.
- `Heartbeat` writes, from a daemon thread of every rank, `heartbeat/rank-<r>.json`: the last completed step and
  the wall time the process was last alive. A rank stuck in a collective stays alive but does not advance; a
  stopped or dead process stops beating. The launcher's watchdog (`HangWatch`, run by tasks/core/jobs.py) reads
  these files, so a hang is detected without relying on the job printing anything. The same thread watches the
  process that launched the job (`KEEL_LAUNCHER_PID`): if it dies (kill -9 of the pipeline), the job stops as if
  signalled, saving a checkpoint, instead of training on as an orphan.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
HEARTBEAT_S = 2.0


class StopRequest:
    def __init__(self):
        self.signal: int | None = None
        self.at: float | None = None

    def install(self) -> "StopRequest":
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame) -> None:
        if self.signal is None:
            self.signal, self.at = signum, time.time()

    def orphaned(self) -> None:
        """The launching process died: stop like on SIGTERM (save, exit)."""
        if self.signal is None:
            self.signal, self.at = signal.SIGHUP, time.time()

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def write(self, path: str | Path, step: int) -> None:
        name = signal.Signals(self.signal).name if self.signal else "unknown"
        write_json_durably(path, {"step": step, "signal": name, "received_at": self.at, "saved_at": time.time()})


class Heartbeat:
    def __init__(self, folder: str | Path, rank: int, interval_s: float = HEARTBEAT_S, stop: StopRequest | None = None):
        self.path = Path(folder) / f"rank-{rank}.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rank, self.interval, self.stop_request = rank, interval_s, stop
        self.launcher = int(os.environ.get("KEEL_LAUNCHER_PID", "0") or 0)
        self.step = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"keel-heartbeat-{rank}", daemon=True)

    def start(self, step: int) -> "Heartbeat":
        self.step = step
        self._beat()
        self._thread.start()
        return self

    def completed(self, step: int) -> None:
        self.step = step
        try:
            self._beat()
        except OSError:  # a heartbeat never stops training
            pass

    def _beat(self) -> None:
        with self._lock:
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"rank": self.rank, "step": self.step, "alive": time.time(), "pid": os.getpid()}))
            os.replace(tmp, self.path)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._beat()
            except OSError:
                pass
            if self.stop_request is not None and self.launcher and not _alive(self.launcher):
                self.stop_request.orphaned()

    def close(self) -> None:
        self._stop.set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_json_durably(path: str | Path, obj) -> None:
    """Write a small JSON file so that after a crash it is either absent or whole (fsync, rename, fsync dir)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(json.dumps(obj, indent=1))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: str | Path) -> None:
    fd = os.open(str(folder), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HangWatch:
    """Watchdog over the heartbeat files of `ranks` processes: a message when no step has completed on every rank
    for `timeout_s` (counted from the start of the job, then from the last step every rank finished), naming the
    last completed step and the rank(s) holding it up; None while the job makes progress."""

    def __init__(self, folder: str | Path, ranks: int, timeout_s: float):
        self.folder, self.ranks, self.timeout = Path(folder), ranks, timeout_s
        self.best, self.last_progress = -1, time.time()

    def beats(self) -> dict[int, dict]:
        out = {}
        for p in self.folder.glob("rank-*.json"):
            try:
                b = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            out[int(b["rank"])] = b
        return out

    def __call__(self) -> str | None:
        now = time.time()
        beats = self.beats()
        low = min((b["step"] for b in beats.values()), default=-1) if len(beats) >= self.ranks else -1
        if low > self.best:
            self.best, self.last_progress = low, now
        if self.timeout <= 0 or now - self.last_progress <= self.timeout:
            return None
        missing = [r for r in range(self.ranks) if r not in beats]
        silent = sorted(r for r, b in beats.items() if now - b["alive"] > 3 * HEARTBEAT_S + 5)
        behind = sorted(r for r, b in beats.items() if b["step"] == low)
        last = max(self.best, 0)
        if missing:
            who = f"rank(s) {missing} never started"
        elif silent:
            who = ", ".join(f"rank {r} (pid {beats[r].get('pid')}) silent for {now - beats[r]['alive']:.0f} s"
                            for r in silent)
        else:
            who = f"rank(s) {behind} alive but stuck after step {low} (a collective or I/O hang)"
        return (f"no training step completed for {now - self.last_progress:.0f} s (hang_timeout_s = {self.timeout:g}); "
                f"last step every rank completed: {last}; {who}")
