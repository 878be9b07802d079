"""The local stack behind `keel up` / `keel down` / `keel status`.

Services, each a process group started from this environment, bound to 127.0.0.1 unless `--host` says otherwise:
  prefect  Prefect server (SQLite under <home>/prefect), UI + API
  mlflow   MLflow tracking server (sqlite <home>/mlflow.db, artifacts on local disk or S3, job execution off),
           optionally with basic auth
  dask     a Dask scheduler (with its dashboard) and workers        (--dask)
  s3       an S3-protocol endpoint for local use (moto, in memory)   (--s3)
PIDs, logs and the stack description live under <home>/stack/. `keel run` reads stack.json and uses what is up.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path


class StackError(RuntimeError):
    pass


@dataclass
class Service:
    name: str
    argv: list[str]
    port: int
    health: str  # URL answering 200 when ready ("" means: the port accepts connections)
    env: dict = field(default_factory=dict)
    url: str = ""
    extra_ports: list[int] = field(default_factory=list)


def stack_dir(home: str | Path) -> Path:
    return Path(home).resolve() / "stack"


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _healthy(url: str, host: str, port: int, auth: tuple[str, str] | None = None) -> bool:
    if not url:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False
    req = urllib.request.Request(url)
    if auth:
        import base64

        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def plan_services(home: Path, host: str, ports: dict[str, int], dask: bool, dask_workers: int, s3: bool,
                  auth: bool, artifacts: str) -> list[Service]:
    """What `keel up` starts, as argv lists (pure: no side effects)."""
    quiet = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    out = [Service("prefect", [_bin("prefect"), "server", "start", "--host", host, "--port", str(ports["prefect"])],
                   ports["prefect"], f"http://{host}:{ports['prefect']}/api/health",
                   {**quiet, "PREFECT_HOME": str(home / "prefect"), "PREFECT_UI_API_URL": f"http://{host}:{ports['prefect']}/api",
                    "PREFECT_SERVER_API_HOST": host, "PREFECT_SERVER_API_PORT": str(ports["prefect"])},
                   f"http://{host}:{ports['prefect']}")]
    ml = [_bin("mlflow"), "server", "--host", host, "--port", str(ports["mlflow"]), "--workers", "1",
          "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
          "--artifacts-destination", artifacts or (home / "mlartifacts").as_uri()]
    ml_env = {**quiet, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    if auth:
        ml += ["--app-name", "basic-auth"]
        ml_env["MLFLOW_AUTH_CONFIG_PATH"] = str(stack_dir(home) / "mlflow-auth.ini")
    out.append(Service("mlflow", ml, ports["mlflow"], f"http://{host}:{ports['mlflow']}/health", ml_env,
                       f"http://{host}:{ports['mlflow']}"))
    if dask:
        out.append(Service("dask-scheduler", [_bin("dask"), "scheduler", "--host", host, "--port", str(ports["dask"]),
                                              "--dashboard-address", f"{host}:{ports['dask_dashboard']}"],
                           ports["dask"], f"http://{host}:{ports['dask_dashboard']}/health", {},
                           f"tcp://{host}:{ports['dask']}", [ports["dask_dashboard"]]))
        out.append(Service("dask-workers", [_bin("dask"), "worker", f"tcp://{host}:{ports['dask']}", "--nworkers",
                                            str(dask_workers), "--nthreads", "1", "--host", host, "--no-dashboard"],
                           0, "", {}, ""))
    if s3:
        out.append(Service("s3", [_bin("moto_server"), "-H", host, "-p", str(ports["s3"])], ports["s3"],
                           f"http://{host}:{ports['s3']}/moto-api/", {}, f"http://{host}:{ports['s3']}"))
    return out


def _write_auth_config(home: Path) -> dict:
    """Admin credentials for MLflow basic auth: from KEEL_MLFLOW_ADMIN_PASSWORD or generated, kept in a 0600 file."""
    sd = stack_dir(home)
    cred = sd / "mlflow-credentials.json"
    if cred.is_file():
        creds = json.loads(cred.read_text())
    else:
        creds = {"username": os.environ.get("KEEL_MLFLOW_ADMIN_USER", "admin"),
                 "password": os.environ.get("KEEL_MLFLOW_ADMIN_PASSWORD") or secrets.token_urlsafe(18),
                 "flask_secret_key": secrets.token_urlsafe(32)}
        cred.touch(mode=0o600)
        cred.write_text(json.dumps(creds))
    ini = sd / "mlflow-auth.ini"
    ini.touch(mode=0o600)
    ini.write_text("[mlflow]\ndefault_permission = READ\n"
                   f"database_uri = sqlite:///{home / 'mlflow-auth.db'}\n"
                   f"admin_username = {creds['username']}\nadmin_password = {creds['password']}\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return creds


def read_state(home: str | Path) -> dict:
    f = stack_dir(home) / "stack.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def credentials(home: str | Path) -> dict | None:
    f = stack_dir(home) / "mlflow-credentials.json"
    return json.loads(f.read_text()) if f.is_file() else None


def up(home: str | Path = ".keel", host: str = "127.0.0.1", ports: dict | None = None, dask: bool = False,
       dask_workers: int = 2, s3: bool = False, auth: bool = False, artifacts: str = "",
       timeout_s: float = 120.0, log=print) -> dict:
    home = Path(home).resolve()
    sd = stack_dir(home)
    sd.mkdir(parents=True, exist_ok=True)
    ports = {"prefect": 4200, "mlflow": 5000, "dask": 8786, "dask_dashboard": 8787, "s3": 9000, **(ports or {})}
    state = status(home)
    if state["services"] and all(s["running"] for s in state["services"].values()):
        log(f"keel stack already up ({sd})")
        return state
    if state["services"]:
        down(home, log=lambda *_: None)  # clear a half-dead stack
    services = plan_services(home, host, ports, dask, dask_workers, s3, auth, artifacts)
    taken = [(s.name, p) for s in services for p in [s.port, *s.extra_ports] if p and not port_free(host, p)]
    if taken:
        raise StackError("cannot start the keel stack: " + "; ".join(
            f"port {p} on {host} (for {n}) is already in use" for n, p in taken) +
            ". Stop what uses it, or pick other ports (e.g. --prefect-port / --mlflow-port).")
    creds = _write_auth_config(home) if auth else None
    started = {}
    try:
        for s in services:
            logf = open(sd / f"{s.name}.log", "ab")
            env = {**os.environ, **s.env}
            if creds and s.name == "mlflow":  # kept out of stack.json: it holds only what is safe to show
                env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = creds["flask_secret_key"]
            proc = subprocess.Popen(s.argv, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=str(home.parent),
                                    start_new_session=True, stdin=subprocess.DEVNULL)
            (sd / f"{s.name}.pid").write_text(str(proc.pid))
            started[s.name] = {**{k: v for k, v in asdict(s).items() if k != "env"}, "pid": proc.pid,
                               "log": str(sd / f"{s.name}.log")}
        _write_state(sd, host, started, auth)
        deadline = time.time() + timeout_s
        for s in services:
            auth_pair = (creds["username"], creds["password"]) if creds and s.name == "mlflow" else None
            while not (_healthy(s.health, host, s.port, auth_pair) if s.port else True):
                if not _alive(started[s.name]["pid"]):
                    raise StackError(f"{s.name} exited during start-up; see {started[s.name]['log']}")
                if time.time() > deadline:
                    raise StackError(f"{s.name} not healthy after {timeout_s:.0f} s; see {started[s.name]['log']}")
                time.sleep(0.5)
            log(f"  {s.name:<15} up   {s.url or '(workers)'}   pid {started[s.name]['pid']}")
    except BaseException:
        down(home, log=lambda *_: None)
        raise
    return status(home)


def _write_state(sd: Path, host: str, services: dict, auth: bool) -> None:
    state = {"host": host, "auth": auth, "services": services, "started": time.time()}
    (sd / "stack.json").write_text(json.dumps(state, indent=1))


def status(home: str | Path = ".keel") -> dict:
    state = read_state(home)
    creds = credentials(home) if state.get("auth") else None
    out = {}
    for name, s in state.get("services", {}).items():
        alive = _alive(s["pid"])
        pair = (creds["username"], creds["password"]) if creds and name == "mlflow" else None
        healthy = alive and (_healthy(s["health"], state["host"], s["port"], pair) if s["port"] else True)
        out[name] = {"pid": s["pid"], "url": s["url"], "running": alive, "healthy": healthy, "log": s["log"]}
    return {"home": str(Path(home).resolve()), "auth": bool(state.get("auth")), "services": out}


def down(home: str | Path = ".keel", timeout_s: float = 20.0, log=print) -> list[str]:
    sd = stack_dir(home)
    state = read_state(home)
    stopped = []
    for name, s in reversed(list(state.get("services", {}).items())):
        pid = s["pid"]
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.time() + timeout_s
            while _alive(pid) and time.time() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
        stopped.append(name)
        (sd / f"{name}.pid").unlink(missing_ok=True)
        log(f"  {name:<15} stopped")
    (sd / "stack.json").unlink(missing_ok=True)
    return stopped


def use_stack(home: str | Path = ".keel") -> dict:
    """Point this process at the servers of a running stack (explicit settings in the environment win)."""
    st = status(home)
    svc = st["services"]
    used = {}
    if svc.get("prefect", {}).get("healthy") and not os.environ.get("PREFECT_API_URL"):
        os.environ["PREFECT_API_URL"] = used["prefect"] = svc["prefect"]["url"] + "/api"
    if svc.get("mlflow", {}).get("healthy") and not os.environ.get("KEEL_TRACKING_URI"):
        os.environ["KEEL_TRACKING_URI"] = used["mlflow"] = svc["mlflow"]["url"]
        creds = credentials(home) if st["auth"] else None
        if creds and not os.environ.get("MLFLOW_TRACKING_USERNAME"):
            os.environ["MLFLOW_TRACKING_USERNAME"] = creds["username"]
            os.environ["MLFLOW_TRACKING_PASSWORD"] = creds["password"]
    if svc.get("dask-scheduler", {}).get("healthy") and not os.environ.get("KEEL_DASK_ADDRESS"):
        os.environ["KEEL_DASK_ADDRESS"] = used["dask"] = svc["dask-scheduler"]["url"]
    if svc.get("s3", {}).get("healthy") and not os.environ.get("AWS_ENDPOINT_URL"):
        os.environ["AWS_ENDPOINT_URL"] = os.environ["AWS_ENDPOINT_URL_S3"] = used["s3"] = svc["s3"]["url"]
    return used
