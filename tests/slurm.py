"""A real single-node Slurm for the tests: munge + slurmctld + slurmd from Debian's packages, configured as in
shared stack notes. Started once per test session when the binaries are present and we may configure them (root);
otherwise the tests that need it are skipped with the reason (`make test` installs the packages when it can)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

CONF = Path("/etc/slurm/slurm.conf")
OURS = "# written by keel's test suite"


def _run(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def idle() -> bool:
    try:
        out = _run(["sinfo", "-h", "-o", "%t"], timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and any(s.strip() in ("idle", "mix", "alloc") for s in out.stdout.split())


def start() -> tuple[list[subprocess.Popen], str]:
    """(daemons started here, '' when Slurm is usable or the reason it is not)."""
    missing = [b for b in ("sbatch", "slurmctld", "slurmd", "munged", "scancel", "squeue") if not shutil.which(b)]
    if missing:
        return [], f"Slurm is not installed ({', '.join(missing)} missing): `make test` installs slurmd, slurmctld, " \
                   "slurm-client and munge from Debian's packages when it can"
    if idle():
        return [], ""
    if os.geteuid() != 0:
        return [], "Slurm is installed but not running, and configuring it needs root"
    if CONF.exists() and OURS not in CONF.read_text():
        return [], f"{CONF} exists and is not ours; start that Slurm to run these tests"
    host = socket.gethostname().split(".")[0]
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(os.urandom(1024))
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)
    for d in ("/var/spool/slurmctld", "/var/spool/slurmd", "/run/munge", "/var/log/slurm"):
        Path(d).mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    CONF.parent.mkdir(parents=True, exist_ok=True)
    CONF.write_text(f"""{OURS}
ClusterName=keel-test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MinJobAge=600
KillWait=20
NodeName={host} CPUs={os.cpu_count()} RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    daemons = []
    if _run(["pgrep", "-x", "munged"]).returncode != 0:
        daemons.append(subprocess.Popen(["munged", "--force", "--foreground"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, user="munge"))
        time.sleep(1)
    daemons.append(subprocess.Popen(["slurmctld", "-D"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(2)
    daemons.append(subprocess.Popen(["slurmd", "-D"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.time() + 60
    while time.time() < deadline and not idle():
        time.sleep(1)
    if not idle():
        stop(daemons)
        log = Path("/var/log/slurm/slurmctld.log")
        return [], "Slurm did not come up: " + (log.read_text()[-500:] if log.exists() else "no log")
    return daemons, ""


def stop(daemons: list[subprocess.Popen]) -> None:
    for p in reversed(daemons):
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def jobs_named(prefix: str) -> list[str]:
    out = _run(["squeue", "-h", "-o", "%i %j"])
    return [line.split()[0] for line in out.stdout.splitlines() if line.split()[1:] and line.split()[1].startswith(prefix)]
