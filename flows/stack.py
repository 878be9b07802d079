"""The local stack behind `keel up` / `keel down` / `keel status`: closed by default.

Services, each a process group started from this environment:
  prefect  Prefect server (SQLite under <home>/prefect), UI + API: an auth string (HTTP basic), CSRF tokens on
           every state-changing request, CORS limited to the UI's own origin
  mlflow   MLflow tracking server (sqlite <home>/mlflow.db, artifacts on local disk or S3, job execution off):
           basic auth with an admin account and a non-admin `keel-runner` account that runs use; CORS and Host
           headers limited to its own origin
  dask     a Dask scheduler and workers (--dask): mutual TLS (a private CA; only certificate holders connect);
           its dashboard on 127.0.0.1 only
  s3       an S3-protocol endpoint for local use (moto, in memory, no auth: always 127.0.0.1) (--s3)
Bound to 127.0.0.1 unless `--host` says otherwise; a non-loopback `--host` is refused with `--no-auth`.
Credentials are generated into <home>/stack/credentials.json and <home>/stack/tls/ (0600, folder 0700); keel's
commands and workers pick them up (`use_stack`). PIDs, logs and the stack description (nothing secret) live
under <home>/stack/. Every service starts with umask 077: its databases and logs are the owner's alone.
"""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from flows.credentials import private_dir, read_credentials, stack_credentials, tighten, tls_files
from flows.stack_mlflow import basic_auth as _basic
from flows.stack_mlflow import cheap_password_checks, provision_runner, write_auth_config


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
    host: str = ""  # the address it binds (when it differs from the stack's --host)


def stack_dir(home: str | Path) -> Path:
    return Path(home).resolve() / "stack"


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _healthy(url: str, host: str, port: int, auth: str = "") -> bool:
    if not url:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", auth)
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


def _names(host: str, port: int) -> list[str]:
    """host:port forms a browser may use to reach a service bound to `host`."""
    if is_loopback(host):
        names = ["127.0.0.1", "localhost"]
    else:
        names = [n for n in (host, socket.getfqdn(), socket.gethostname()) if n and not _unspecified(n)]
    return [f"{n}:{port}" for n in dict.fromkeys(names)]


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def public_host(host: str) -> str:
    """The name clients use for a service bound to `host` (this machine's name for an all-interfaces bind)."""
    return socket.getfqdn() if _unspecified(host) else host


def plan_services(home: Path, host: str, ports: dict[str, int], dask: bool, dask_workers: int, s3: bool,
                  auth: bool, artifacts: str, tls: dict | None = None) -> list[Service]:
    """What `keel up` starts, as argv lists (pure: no side effects; secrets are added to the environment at start)."""
    quiet = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    pub = public_host(host)
    pp, mp = ports["prefect"], ports["mlflow"]
    prefect_env = {**quiet, "PREFECT_HOME": str(home / "prefect"), "PREFECT_UI_API_URL": f"http://{pub}:{pp}/api",
                   "PREFECT_SERVER_API_HOST": host, "PREFECT_SERVER_API_PORT": str(pp),
                   "PREFECT_SERVER_CORS_ALLOWED_ORIGINS": ",".join(f"http://{n}" for n in _names(host, pp)),
                   "PREFECT_SERVER_CSRF_PROTECTION_ENABLED": "true" if auth else "false"}
    out = [Service("prefect", [_bin("prefect"), "server", "start", "--host", host, "--port", str(pp)], pp,
                   f"http://{pub}:{pp}/api/health", prefect_env, f"http://{pub}:{pp}")]
    ml = [_bin("mlflow"), "server", "--host", host, "--port", str(mp), "--workers", "1",
          "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
          "--artifacts-destination", artifacts or (home / "mlartifacts").as_uri(),
          "--allowed-hosts", ",".join(_names(host, mp)),
          "--cors-allowed-origins", ",".join(f"http://{n}" for n in _names(host, mp))]
    ml_env = {**quiet, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    if auth:
        ml += ["--app-name", "basic-auth"]
        ml_env["MLFLOW_AUTH_CONFIG_PATH"] = str(stack_dir(home) / "mlflow-auth.ini")
    out.append(Service("mlflow", ml, mp, f"http://{pub}:{mp}/health", ml_env, f"http://{pub}:{mp}"))
    if dask:
        loop = "127.0.0.1"
        proto = "tls" if tls else "tcp"
        sched_tls = ["--tls-ca-file", tls["ca"], "--tls-cert", tls["scheduler_cert"], "--tls-key",
                     tls["scheduler_key"]] if tls else []
        worker_tls = ["--tls-ca-file", tls["ca"], "--tls-cert", tls["worker_cert"], "--tls-key",
                      tls["worker_key"]] if tls else []
        out.append(Service("dask-scheduler", [_bin("dask"), "scheduler", "--host", host, "--port", str(ports["dask"]),
                                              "--protocol", proto, *sched_tls,
                                              "--dashboard-address", f"{loop}:{ports['dask_dashboard']}"],
                           ports["dask"], f"http://{loop}:{ports['dask_dashboard']}/health", {},
                           f"{proto}://{pub}:{ports['dask']}", [ports["dask_dashboard"]]))
        out.append(Service("dask-workers", [_bin("dask"), "worker", f"{proto}://{pub}:{ports['dask']}", "--nworkers",
                                            str(dask_workers), "--nthreads", "1", "--host", host, "--no-dashboard",
                                            "--dashboard-address", "127.0.0.1:0",  # its HTTP routes (health, metrics)
                                            *worker_tls],
                           0, "", {}, ""))
    if s3:  # moto has no authentication: never reachable from another machine
        out.append(Service("s3", [_bin("moto_server"), "-H", "127.0.0.1", "-p", str(ports["s3"])], ports["s3"],
                           f"http://127.0.0.1:{ports['s3']}/moto-api/", {}, f"http://127.0.0.1:{ports['s3']}",
                           host="127.0.0.1"))
    return out


def read_state(home: str | Path) -> dict:
    f = stack_dir(home) / "stack.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def credentials(home: str | Path) -> dict | None:
    return read_credentials(stack_dir(home))


def _health_auth(name: str, creds: dict | None) -> str:
    return _basic(**creds["mlflow_admin"]) if creds and name == "mlflow" else ""


def up(home: str | Path = ".keel", host: str = "127.0.0.1", ports: dict | None = None, dask: bool = False,
       dask_workers: int = 2, s3: bool = False, auth: bool = True, artifacts: str = "",
       timeout_s: float = 120.0, log=print) -> dict:
    home = Path(home).resolve()
    if not auth and not is_loopback(host):
        raise StackError(f"refusing --host {host} with --no-auth: every service would answer anyone who can reach "
                         "this machine. Drop --no-auth (Prefect, MLflow and Dask are then authenticated) or bind "
                         "127.0.0.1.")
    private_dir(home)
    sd = private_dir(stack_dir(home))
    ports = {"prefect": 4200, "mlflow": 5000, "dask": 8786, "dask_dashboard": 8787, "s3": 9000, **(ports or {})}
    state = status(home)
    if state["services"] and all(s["running"] for s in state["services"].values()):
        log(f"keel stack already up ({sd})")
        return state
    if state["services"]:
        down(home, log=lambda *_: None)  # clear a half-dead stack
    creds = stack_credentials(sd) if auth else None
    tls = tls_files(sd) if auth and dask else None
    services = plan_services(home, host, ports, dask, dask_workers, s3, auth, artifacts, tls)
    taken = [(s.name, p, s.host or host) for s in services for p in [s.port, *s.extra_ports]
             if p and not port_free(s.host or host, p)]
    if taken:
        raise StackError("cannot start the keel stack: " + "; ".join(
            f"port {p} on {h} (for {n}) is already in use" for n, p, h in taken) +
            ". Stop what uses it, or pick other ports (e.g. --prefect-port / --mlflow-port).")
    if creds:
        write_auth_config(home, stack_dir(home), creds)
    started = {}
    try:
        for s in services:
            logf = open(sd / f"{s.name}.log", "ab")
            os.chmod(sd / f"{s.name}.log", 0o600)
            env = {**os.environ, **s.env}
            for k in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "MLFLOW_TRACKING_USERNAME",
                      "MLFLOW_TRACKING_PASSWORD", "KEEL_TRACKING_URI"):
                env.pop(k, None)  # a server is not a client of another stack
            if creds and s.name == "prefect":  # secrets go to the process environment, never to stack.json
                env["PREFECT_SERVER_API_AUTH_STRING"] = creds["prefect_auth_string"]
            if creds and s.name == "mlflow":
                env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = creds["flask_secret_key"]
            proc = subprocess.Popen(s.argv, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=str(home.parent),
                                    start_new_session=True, stdin=subprocess.DEVNULL, umask=0o077)
            logf.close()
            (sd / f"{s.name}.pid").write_text(str(proc.pid))
            started[s.name] = {**{k: v for k, v in asdict(s).items() if k != "env"}, "pid": proc.pid,
                               "log": str(sd / f"{s.name}.log")}
        _write_state(sd, host, started, auth)
        deadline = time.time() + timeout_s
        for s in services:
            while not (_healthy(s.health, s.host or host, s.port, _health_auth(s.name, creds)) if s.port else True):
                if not _alive(started[s.name]["pid"]):
                    raise StackError(f"{s.name} exited during start-up; see {started[s.name]['log']}")
                if time.time() > deadline:
                    raise StackError(f"{s.name} not healthy after {timeout_s:.0f} s; see {started[s.name]['log']}")
                time.sleep(0.5)
            if creds and s.name == "mlflow":
                provision_runner(s.url, creds)
                cheap_password_checks(home / "mlflow-auth.db", creds)
            log(f"  {s.name:<15} up   {s.url or '(workers)'}   pid {started[s.name]['pid']}")
        tighten(home / "mlflow.db", home / "mlflow-auth.db", home / "prefect" / "prefect.db")
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
        healthy = alive and (_healthy(s["health"], s.get("host") or state["host"], s["port"],
                                      _health_auth(name, creds)) if s["port"] else True)
        out[name] = {"pid": s["pid"], "url": s["url"], "running": alive, "healthy": healthy, "log": s["log"]}
    return {"home": str(Path(home).resolve()), "host": state.get("host", ""), "auth": bool(state.get("auth")),
            "services": out}


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
    """Point this process (and what it starts: Dask workers, torchrun, flow-run subprocesses) at the servers of a
    running stack, with its credentials: the Prefect auth string, the MLflow runner account, the Dask client
    certificate. Explicit settings in the environment win."""
    st = status(home)
    svc = st["services"]
    creds = credentials(home) if st["auth"] else None
    used = {}
    if svc.get("prefect", {}).get("healthy") and not os.environ.get("PREFECT_API_URL"):
        os.environ["PREFECT_API_URL"] = used["prefect"] = svc["prefect"]["url"] + "/api"
        if creds:
            os.environ.setdefault("PREFECT_API_AUTH_STRING", creds["prefect_auth_string"])
    if svc.get("mlflow", {}).get("healthy") and not os.environ.get("KEEL_TRACKING_URI"):
        os.environ["KEEL_TRACKING_URI"] = used["mlflow"] = svc["mlflow"]["url"]
        if creds and not os.environ.get("MLFLOW_TRACKING_USERNAME"):
            os.environ["MLFLOW_TRACKING_USERNAME"] = creds["mlflow_runner"]["username"]
            os.environ["MLFLOW_TRACKING_PASSWORD"] = creds["mlflow_runner"]["password"]
    if svc.get("dask-scheduler", {}).get("healthy") and not os.environ.get("KEEL_DASK_ADDRESS"):
        os.environ["KEEL_DASK_ADDRESS"] = used["dask"] = svc["dask-scheduler"]["url"]
        if creds:
            os.environ["KEEL_DASK_TLS"] = str(stack_dir(home) / "tls")
    if svc.get("s3", {}).get("healthy") and not os.environ.get("AWS_ENDPOINT_URL"):
        os.environ["AWS_ENDPOINT_URL"] = os.environ["AWS_ENDPOINT_URL_S3"] = used["s3"] = svc["s3"]["url"]
    return used


def _prefect_api_configured() -> bool:
    """Whether Prefect will talk to a server it was told about (environment or active profile) rather than start a
    temporary one. Read without importing Prefect (its settings are fixed at import)."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        import tomllib

        doc = tomllib.loads(path.read_text())
    except (OSError, ValueError):
        return False
    active = os.environ.get("PREFECT_PROFILE") or doc.get("active", "ephemeral")
    return bool(doc.get("profiles", {}).get(active, {}).get("PREFECT_API_URL"))


def lock_ephemeral_prefect() -> bool:
    """Give the temporary Prefect server of this process (and its client) a random auth string."""
    if _prefect_api_configured() or "prefect.settings" in sys.modules:
        return False
    if not os.environ.get("PREFECT_SERVER_API_AUTH_STRING"):
        import secrets

        os.environ["PREFECT_SERVER_API_AUTH_STRING"] = f"keel:{secrets.token_urlsafe(24)}"
    os.environ.setdefault("PREFECT_API_AUTH_STRING", os.environ["PREFECT_SERVER_API_AUTH_STRING"])
    return True
