"""Operations, for real: `keel up` starts the Prefect and MLflow servers (and Dask, S3), closed by default; `keel run`
finds and uses them with the stack's credentials, a cron deployment runs under `keel worker`, headless Chromium
logs in and shows the run and the champion model in both UIs, and a page on another origin can neither read nor
create anything."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, free_port, write_recipe
from tests.flows.ops_helpers import (EVIL_PAGE, basic, fr_flow_id, http, keel, last_json, prefect_client, serve_page,
                                     start_browser, wait_for_text)

pytestmark = pytest.mark.slow
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("stack") / ".keel"
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "KEEL_TRACKING_URI")}
    env.update(KEEL_HOME=str(home), PREFECT_HOME=str(home / "prefect"))
    ports = {k: free_port() for k in ("prefect", "mlflow", "dask", "dask-dashboard", "s3")}
    up = keel(["up", "--dask", "--dask-workers", "2", "--s3", "--json",
               *[a for k, p in ports.items() for a in (f"--{k}-port", str(p))]], env)
    state = last_json(up.stdout)
    creds = json.loads((home / "stack" / "credentials.json").read_text())
    yield {"home": home, "env": env, "ports": ports, "state": state, "creds": creds, "up_output": up.stdout + up.stderr,
           "prefect": f"http://127.0.0.1:{ports['prefect']}", "mlflow": f"http://127.0.0.1:{ports['mlflow']}"}
    keel(["down"], env, check=False)


def test_stack_is_up_on_loopback_and_reports_port_conflicts(stack, tmp_path):
    import psutil

    st = last_json(keel(["status", "--json"], stack["env"]).stdout)
    assert {n: s["healthy"] for n, s in st["services"].items()} == dict.fromkeys(
        ["prefect", "mlflow", "dask-scheduler", "dask-workers", "s3"], True)
    for name, s in st["services"].items():  # every listening socket of the stack is on 127.0.0.1
        procs = [psutil.Process(s["pid"]), *psutil.Process(s["pid"]).children(recursive=True)]
        listening = [c.laddr.ip for p in procs for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN]
        assert listening and set(listening) == {"127.0.0.1"}, (name, listening)
    again = keel(["up", "--prefect-port", str(stack["ports"]["prefect"]), "--mlflow-port",
                  str(stack["ports"]["mlflow"]), "--dask"], stack["env"])
    assert "already up" in again.stdout
    other = {**stack["env"], "KEEL_HOME": str(tmp_path / ".keel")}
    clash = keel(["up", "--prefect-port", str(stack["ports"]["prefect"]), "--mlflow-port", str(free_port())], other,
                 check=False)
    assert clash.returncode == 1
    assert f"port {stack['ports']['prefect']} on 127.0.0.1 (for prefect) is already in use" in clash.stderr
    down = last_json(keel(["status", "--json"], other, check=False).stdout)
    assert down["services"] == {}


@pytest.fixture(scope="session")
def finished_run(stack, tmp_path_factory, demo_corpus):
    root = tmp_path_factory.mktemp("ops-run")
    recipe = write_recipe(root, demo_corpus, ids=["mitre_cwe", "shakespeare"])
    text = "\n".join(line for line in recipe.read_text().splitlines() if not line.startswith("tracking_uri"))
    recipe.write_text(text)  # no tracking URI: the run must find the stack's MLflow server
    out = keel(["run", "--recipe", str(recipe), "--json", "--set", "evaluate.min_domain_improvement=-1000",
                "--set", "evaluate.max_hap_rate=1.0"], stack["env"], timeout=900)
    assert "using the running stack's prefect" in out.stderr and "using the running stack's mlflow" in out.stderr
    return {"recipe": recipe, "result": last_json(out.stdout)}


def test_run_uses_the_stack_servers(stack, finished_run):
    res = finished_run["result"]
    assert res["tracking_uri"] == stack["mlflow"] and "champion" in res["aliases"]
    with prefect_client(stack["prefect"], stack["creds"]["prefect_auth_string"]) as client:
        fr = client.read_flow_run(res["flow_run_id"])
        assert fr.state.is_completed()
        names = {t.name.rsplit("-", 1)[0] for t in client.read_task_runs(
            flow_run_filter=__import__("prefect.client.schemas.filters", fromlist=["x"]).FlowRunFilter(
                id={"any_": [fr.id]}))}
        assert {"legal", "ingest", "curate", "tokenize", "pretrain", "specialize", "evaluate", "register"} <= names
        keys = {a.key for a in client.read_artifacts(limit=100)}
        assert {"curation-funnel", "token-budget", "evaluation", "training-curves"} <= keys
    status, _, body = http("GET", f"{stack['mlflow']}/api/2.0/mlflow/registered-models/alias?name="
                           f"{res['registered_model']}&alias=champion", basic(**stack["creds"]["mlflow_runner"]))
    assert status == 200 and json.loads(body)["model_version"]["version"] == res["version"]


def test_credentials_in_uris_recipes_and_secret_blocks_reach_nothing_written(stack, tmp_path, demo_corpus):
    """The MLflow runner password in the recipe's tracking URI, an S3 secret key in the output-root URI (the stack's
    S3), a Secret block's value: the run works with them and none appears in any file (output, MLflow store and
    artifacts, Prefect database), S3 object, Prefect flow-run parameter, log or artifact, or the terminal."""
    import boto3

    from tests.conftest import PLANTED_SECRET, files_containing

    runner_pw = stack["creds"]["mlflow_runner"]["password"]
    s3_url = stack["state"]["services"]["s3"]["url"]
    s3 = boto3.client("s3", endpoint_url=s3_url, aws_access_key_id="k", aws_secret_access_key="k",
                      region_name="us-east-1")
    s3.create_bucket(Bucket="keel-secrets")
    env = {k: v for k, v in stack["env"].items() if not k.startswith(("AWS_", "MLFLOW_TRACKING_"))}
    env.update(AWS_DEFAULT_REGION="us-east-1")
    auth = stack["creds"]["prefect_auth_string"]
    block = subprocess.run([sys.executable, "-c", "from prefect.blocks.system import Secret; import sys; "
                            "Secret(value={'KEEL_BLOCK_SECRET': sys.argv[1]}).save('keel-secret-test', overwrite=True)",
                            PLANTED_SECRET + "-block"], env={**env, "PREFECT_API_URL": stack["prefect"] + "/api",
                                                             "PREFECT_API_AUTH_STRING": auth},
                           capture_output=True, text=True, timeout=120)
    assert block.returncode == 0, block.stderr[-2000:]
    recipe = write_recipe(tmp_path, demo_corpus, ids=["mitre_cwe"])
    lines = [ln for ln in recipe.read_text().splitlines() if not ln.startswith("tracking_uri")]
    at = lines.index("[run]") + 1
    lines.insert(at, f'tracking_uri = "http://keel-runner:{runner_pw}@127.0.0.1:{stack["ports"]["mlflow"]}"')
    recipe.write_text("\n".join(lines))
    out = keel(["run", "--recipe", str(recipe), "--until", "ingest", "--json",
                "--set", f"run.output_root=s3://AKIAKEELTEST:{PLANTED_SECRET}@keel-secrets/runs",
                "--set", 'run.secret_blocks=["keel-secret-test"]'], env, timeout=600)
    res = last_json(out.stdout)
    assert res["counts"]["ingest"]["kept"] > 0 and res["tracking_uri"] == stack["mlflow"]
    objects = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="keel-secrets")
               for o in page.get("Contents", [])]
    assert any("/ingest/" in k for k in objects)  # the run wrote its output through the URI's credentials
    home = stack["home"]
    for secret in (PLANTED_SECRET, runner_pw):
        assert secret not in out.stdout + out.stderr
        written = [f for f in files_containing(secret, tmp_path, home)  # but the inputs that hold it
                   if not f.endswith(("credentials.json", "mlflow-auth.ini")) and f != str(recipe)]
        assert written == [], (secret[:4], written)
        assert not [k for k in objects if secret.encode() in s3.get_object(Bucket="keel-secrets", Key=k)["Body"].read()]
    with prefect_client(stack["prefect"], auth) as client:
        fr = client.read_flow_run(res["flow_run_id"])
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        logs, page = [], None
        while page is None or len(page) == 200:
            page = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[fr.id])), limit=200, offset=len(logs))
            logs += page
        assert len(logs) > 5
        records = json.dumps(fr.parameters) + " ".join(lg.message for lg in logs)
        records += " ".join(f"{a.data} {a.description}" for a in client.read_artifacts(limit=200))
    for secret in (PLANTED_SECRET, runner_pw):
        assert secret not in records


def _mode(p) -> str:
    return oct(p.stat().st_mode & 0o777)


def test_stack_is_closed_by_default(stack):
    """No credentials: 401/403 from Prefect and MLflow; another web origin: no CORS grant, and MLflow refuses a
    cross-origin write even with valid credentials; the runner account is not an admin; Dask answers only holders
    of a certificate from the stack's CA; every credential file is 0600 and no credential reaches a log or the
    terminal."""
    p, m, creds = stack["prefect"], stack["mlflow"], stack["creds"]
    evil = {"Origin": "http://evil.example"}
    for method, path, body in [("POST", "/api/block_documents/filter", {"include_secrets": True}),
                               ("POST", "/api/flow_runs/filter", {}), ("GET", "/api/admin/settings", None),
                               ("POST", "/api/deployments/", {"name": "x", "flow_id": "00000000-0000-0000-0000-000000000000"})]:
        status, headers, _ = http(method, p + path, evil, body)
        assert status in (401, 403), (path, status)
        assert "access-control-allow-origin" not in headers, path
    status, headers, _ = http("OPTIONS", p + "/api/block_documents/filter",
                              {**evil, "Access-Control-Request-Method": "POST"})
    assert status >= 400 and "access-control-allow-origin" not in headers
    status, headers, _ = http("OPTIONS", p + "/api/block_documents/filter",
                              {"Origin": p, "Access-Control-Request-Method": "POST"})
    assert status == 200 and headers["access-control-allow-origin"] == p  # the UI's own origin
    user, _, pw = creds["prefect_auth_string"].partition(":")
    status, _, _ = http("POST", p + "/api/block_documents/filter", basic(user, pw), {})
    assert status == 403  # right auth string, but no CSRF token: a forged form post cannot act
    status, _, _ = http("POST", p + "/api/block_documents/filter", basic(user, pw + "x"), {})
    assert status in (401, 403)

    status, _, _ = http("GET", m + "/api/2.0/mlflow/experiments/search?max_results=5")
    assert status == 401
    runner, admin = basic(**creds["mlflow_runner"]), basic(**creds["mlflow_admin"])
    status, headers, _ = http("POST", m + "/api/2.0/mlflow/experiments/create", {**runner, **evil}, {"name": "evil"})
    assert status == 403 and "access-control-allow-origin" not in headers
    status, _, _ = http("GET", m + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=evil", admin)
    assert status == 404
    status, _, _ = http("GET", m + "/api/2.0/mlflow/experiments/search?max_results=5",
                        {**runner, "Host": "evil.example"})
    assert status == 403  # DNS rebinding: a foreign Host header is refused
    status, _, _ = http("POST", m + "/api/2.0/mlflow/users/create", runner, {"username": "x", "password": "y"})
    assert status == 403  # runs use an account that cannot manage users
    import sqlite3

    with sqlite3.connect(stack["home"] / "mlflow-auth.db") as con:  # salted, cheap to check, never the password
        stored = dict(con.execute("SELECT username, password_hash FROM users").fetchall())
    for account in (creds["mlflow_admin"], creds["mlflow_runner"]):
        assert stored[account["username"]].startswith("pbkdf2:sha256:1000$")
        assert account["password"] not in stored[account["username"]]

    from distributed import Client
    from distributed.security import Security

    sched = stack["state"]["services"]["dask-scheduler"]["url"]
    assert sched.startswith("tls://")
    for address, security in [(sched.replace("tls://", "tcp://"), None), (sched, Security.temporary())]:
        with pytest.raises(Exception):
            Client(address, timeout="5s", security=security)
    from tasks.core.cluster import client_security

    os.environ["KEEL_DASK_TLS"] = str(stack["home"] / "stack" / "tls")
    try:
        with Client(sched, timeout="10s", security=client_security(sched)) as c:
            assert c.submit(sum, [1, 2, 3]).result() == 6
    finally:
        os.environ.pop("KEEL_DASK_TLS")

    home = stack["home"]
    private = [home / "stack" / "credentials.json", home / "stack" / "mlflow-auth.ini", home / "mlflow-auth.db",
               home / "mlflow.db", home / "prefect" / "prefect.db", *(home / "stack" / "tls").iterdir(),
               *(home / "stack").glob("*.log")]
    assert {str(f): _mode(f) for f in private} == {str(f): "0o600" for f in private}
    assert {_mode(d) for d in (home, home / "stack", home / "stack" / "tls")} == {"0o700"}
    values = [creds["prefect_auth_string"].partition(":")[2], creds["mlflow_admin"]["password"],
              creds["mlflow_runner"]["password"], creds["flask_secret_key"]]
    from tests.conftest import files_containing

    written = [f for v in values for f in files_containing(v, home)
               if not f.endswith(("credentials.json", "mlflow-auth.ini"))]
    assert written == [] and not any(v in stack["up_output"] for v in values)


def test_non_loopback_host_needs_authentication(tmp_path):
    """`--host 0.0.0.0 --no-auth` is refused; with authentication Prefect, MLflow and the Dask scheduler listen on
    every interface and refuse requests without credentials from another address, while the S3 stand-in and the
    Dask dashboard stay on 127.0.0.1."""
    import psutil

    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "KEEL_TRACKING_URI")}
    env.update(KEEL_HOME=str(tmp_path / ".keel"), PREFECT_HOME=str(tmp_path / ".keel" / "prefect"))
    refused = keel(["up", "--host", "0.0.0.0", "--no-auth"], env, check=False)
    assert refused.returncode == 1 and "refusing --host 0.0.0.0 with --no-auth" in refused.stderr
    assert not (tmp_path / ".keel" / "stack" / "stack.json").exists()
    ports = {k: free_port() for k in ("prefect", "mlflow", "dask", "dask-dashboard", "s3")}
    st = last_json(keel(["up", "--host", "0.0.0.0", "--dask", "--dask-workers", "1", "--s3", "--json",
                         *[a for k, p in ports.items() for a in (f"--{k}-port", str(p))]], env).stdout)
    try:
        listening = {}
        for name, s in st["services"].items():
            procs = [psutil.Process(s["pid"]), *psutil.Process(s["pid"]).children(recursive=True)]
            listening.update({c.laddr.port: c.laddr.ip for p in procs for c in p.net_connections("inet")
                              if c.status == psutil.CONN_LISTEN})
        assert {listening[ports[k]] for k in ("prefect", "mlflow", "dask")} == {"0.0.0.0"}
        assert {listening[ports[k]] for k in ("s3", "dask-dashboard")} == {"127.0.0.1"}
        addrs = [a.address for nic in psutil.net_if_addrs().values() for a in nic
                 if a.family.name == "AF_INET" and not a.address.startswith("127.")]
        if addrs:  # from this machine's own non-loopback address, as another host would
            status, _, _ = http("POST", f"http://{addrs[0]}:{ports['prefect']}/api/flow_runs/filter", {}, {})
            assert status in (401, 403)
            status, _, _ = http("GET", f"http://{addrs[0]}:{ports['mlflow']}/api/2.0/mlflow/experiments/search")
            assert status in (401, 403)
    finally:
        keel(["down"], env, check=False)


def test_browser_shows_the_run_and_the_champion(stack, finished_run):
    res = finished_run["result"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pw, browser = start_browser()
    try:
        admin = stack["creds"]["mlflow_admin"]
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, http_credentials={
            "username": admin["username"], "password": admin["password"], "origin": stack["mlflow"]})
        page = context.new_page()
        page.goto(stack["prefect"], wait_until="domcontentloaded")  # the UI asks for the auth string first
        page.get_by_placeholder("admin:pass").fill(stack["creds"]["prefect_auth_string"])
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url: "/login" not in url, timeout=30_000)
        with prefect_client(stack["prefect"], stack["creds"]["prefect_auth_string"]) as client:
            run_name = client.read_flow_run(res["flow_run_id"]).name
        page.goto(f"{stack['prefect']}/runs/flow-run/{res['flow_run_id']}", wait_until="domcontentloaded")
        wait_for_text(page, [run_name, "Completed"])
        page.get_by_text("Task Runs", exact=True).first.click()
        wait_for_text(page, ["register-", "evaluate-", "specialize-", "pretrain-", "tokenize-"])
        page.screenshot(path=str(SCREENSHOTS / "prefect-flow-run.png"), full_page=True)

        page.goto(f"{stack['mlflow']}/#/models/{res['registered_model']}", wait_until="domcontentloaded")
        wait_for_text(page, [res["registered_model"], "champion", f"Version {res['version']}"])
        page.screenshot(path=str(SCREENSHOTS / "mlflow-registered-model.png"), full_page=True)

        # the same browser, logged in to both UIs, opens a page on another origin that tries to use them
        evil = serve_page(EVIL_PAGE.replace("PREFECT", stack["prefect"]).replace("MLFLOW", stack["mlflow"])
                           .replace("FLOW_ID", str(fr_flow_id(stack, res))))
        page.goto(evil, wait_until="domcontentloaded")
        page.wait_for_function("document.title === 'done'", timeout=60_000)
        probes = json.loads(page.inner_text("body"))
    finally:
        browser.close()
        pw.stop()
    assert (SCREENSHOTS / "prefect-flow-run.png").stat().st_size > 10_000
    assert (SCREENSHOTS / "mlflow-registered-model.png").stat().st_size > 10_000
    assert set(probes) == {"prefect_secrets", "prefect_create", "mlflow_read", "mlflow_create"}
    for name, r in probes.items():  # blocked by CORS (nothing readable) or refused
        assert "error" in r or r["status"] in (401, 403), (name, r)
    status, _, _ = http("GET", stack["mlflow"] + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=evil-page",
                        basic(**stack["creds"]["mlflow_admin"]))
    assert status == 404
    from prefect.client.schemas.filters import FlowRunFilter

    with prefect_client(stack["prefect"], stack["creds"]["prefect_auth_string"]) as client:
        assert client.read_flow_runs(flow_run_filter=FlowRunFilter(name={"any_": ["evil-page"]})) == []


def test_cron_deployment_runs_under_keel_worker(stack, tmp_path, demo_corpus):
    recipe = write_recipe(tmp_path, demo_corpus, ids=["mitre_cwe"])
    dep = last_json(keel(["deploy", "--recipe", str(recipe), "--cron", "* * * * *", "--name", "every-minute",
                          "--until", "legal", "--json"], stack["env"]).stdout)
    with prefect_client(stack["prefect"], stack["creds"]["prefect_auth_string"]) as client:
        d = client.read_deployment(dep["id"])
        assert [s.schedule.cron for s in d.schedules] == ["* * * * *"]
        assert d.global_concurrency_limit is not None and d.global_concurrency_limit.limit == 1
    bad = keel(["deploy", "--recipe", str(recipe), "--cron", "61 * * * *"], stack["env"], check=False)
    assert bad.returncode == 2 and "not a valid cron expression" in bad.stderr
    worker = subprocess.Popen([sys.executable, "-m", "flows.cli", "worker"], cwd=REPO, env=stack["env"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    from prefect.client.schemas.filters import DeploymentFilter

    try:
        deadline, done = time.time() + 200, []
        while time.time() < deadline and not done:
            with prefect_client(stack["prefect"], stack["creds"]["prefect_auth_string"]) as client:
                runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id={"any_": [d.id]}))
            done = [r for r in runs if r.state and r.state.is_completed()]
            failed = [r for r in runs if r.state and r.state.is_final() and not r.state.is_completed()]
            assert not failed, [f"{r.name}: {r.state.message}" for r in failed]
            time.sleep(2)
        assert done, "no scheduled run completed within 200 s"
        assert done[0].parameters["until"] == "legal" and done[0].auto_scheduled
    finally:  # the worker is stopped idle: no new scheduled run (one a minute), and the one under way finished
        with prefect_client(stack["prefect"], stack["creds"]["prefect_auth_string"]) as client:
            client.pause_deployment(d.id)
            settle = time.time() + 180
            while time.time() < settle and any(
                    r.state and not r.state.is_final() and not r.state.is_scheduled()
                    for r in client.read_flow_runs(deployment_filter=DeploymentFilter(id={"any_": [d.id]}))):
                time.sleep(2)
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:  # under a full suite's load Prefect's worker may outlast the wait
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
        with prefect_client(stack["prefect"], stack["creds"]["prefect_auth_string"]) as client:
            client.delete_deployment(d.id)
