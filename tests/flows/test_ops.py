"""Operations, for real: `keel up` starts the Prefect and MLflow servers, `keel run` finds and uses them, a cron
deployment runs under `keel worker`, and headless Chromium shows the run and the champion model in both UIs."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, free_port, write_recipe

pytestmark = pytest.mark.slow
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def keel(args: list[str], env: dict, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, f"keel {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def last_json(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("stack") / ".keel"
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "KEEL_TRACKING_URI")}
    env.update(KEEL_HOME=str(home), PREFECT_HOME=str(home / "prefect"))
    ports = {"prefect": free_port(), "mlflow": free_port()}
    up = keel(["up", "--prefect-port", str(ports["prefect"]), "--mlflow-port", str(ports["mlflow"]), "--json"], env)
    state = last_json(up.stdout)
    yield {"home": home, "env": env, "ports": ports, "state": state,
           "prefect": f"http://127.0.0.1:{ports['prefect']}", "mlflow": f"http://127.0.0.1:{ports['mlflow']}"}
    keel(["down"], env, check=False)


def prefect_client(url: str):
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(url + "/api")


def test_stack_is_up_on_loopback_and_reports_port_conflicts(stack, tmp_path):
    import psutil

    st = last_json(keel(["status", "--json"], stack["env"]).stdout)
    assert {n: s["healthy"] for n, s in st["services"].items()} == {"prefect": True, "mlflow": True}
    for name, s in st["services"].items():  # every listening socket of the stack is on 127.0.0.1
        procs = [psutil.Process(s["pid"]), *psutil.Process(s["pid"]).children(recursive=True)]
        listening = [c.laddr.ip for p in procs for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN]
        assert listening and set(listening) == {"127.0.0.1"}, (name, listening)
    again = keel(["up", "--prefect-port", str(stack["ports"]["prefect"]), "--mlflow-port",
                  str(stack["ports"]["mlflow"])], stack["env"])
    assert "already up" in again.stdout
    other = {**stack["env"], "KEEL_HOME": str(tmp_path / ".keel")}
    clash = keel(["up", "--prefect-port", str(stack["ports"]["prefect"]), "--mlflow-port", str(free_port())], other,
                 check=False)
    assert clash.returncode == 1
    assert f"port {stack['ports']['prefect']} on 127.0.0.1 (for prefect) is already in use" in clash.stderr
    down = last_json(keel(["status", "--json"], other, check=False).stdout)
    assert down["services"] == {}


@pytest.fixture(scope="module")
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
    with prefect_client(stack["prefect"]) as client:
        fr = client.read_flow_run(res["flow_run_id"])
        assert fr.state.is_completed()
        names = {t.name.rsplit("-", 1)[0] for t in client.read_task_runs(
            flow_run_filter=__import__("prefect.client.schemas.filters", fromlist=["x"]).FlowRunFilter(
                id={"any_": [fr.id]}))}
        assert {"legal", "ingest", "curate", "tokenize", "pretrain", "specialize", "evaluate", "register"} <= names
        keys = {a.key for a in client.read_artifacts(limit=100)}
        assert {"curation-funnel", "token-budget", "evaluation", "training-curves"} <= keys
    from mlflow import MlflowClient

    mv = MlflowClient(stack["mlflow"]).get_model_version_by_alias(res["registered_model"], "champion")
    assert str(mv.version) == res["version"]


def _browser():
    if not CHROMIUM:
        pytest.skip("no chromium on this machine (Debian package `chromium`); `make test` installs it when it can")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"])
    return pw, browser


def _wait_for_text(page, needles: list[str], timeout_s: float = 60) -> str:
    deadline = time.time() + timeout_s
    text = ""
    while time.time() < deadline:
        text = page.inner_text("body")
        if all(n in text for n in needles):
            return text
        time.sleep(0.5)
    raise AssertionError(f"page never showed {needles}; it showed:\n{text[:2000]}")


def test_browser_shows_the_run_and_the_champion(stack, finished_run):
    res = finished_run["result"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pw, browser = _browser()
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        with prefect_client(stack["prefect"]) as client:
            run_name = client.read_flow_run(res["flow_run_id"]).name
        page.goto(f"{stack['prefect']}/runs/flow-run/{res['flow_run_id']}", wait_until="domcontentloaded")
        _wait_for_text(page, [run_name, "Completed"])
        page.get_by_text("Task Runs", exact=True).first.click()
        _wait_for_text(page, ["register-", "evaluate-", "specialize-", "pretrain-", "tokenize-"])
        page.screenshot(path=str(SCREENSHOTS / "prefect-flow-run.png"), full_page=True)

        page.goto(f"{stack['mlflow']}/#/models/{res['registered_model']}", wait_until="domcontentloaded")
        _wait_for_text(page, [res["registered_model"], "champion", f"Version {res['version']}"])
        page.screenshot(path=str(SCREENSHOTS / "mlflow-registered-model.png"), full_page=True)
    finally:
        browser.close()
        pw.stop()
    assert (SCREENSHOTS / "prefect-flow-run.png").stat().st_size > 10_000
    assert (SCREENSHOTS / "mlflow-registered-model.png").stat().st_size > 10_000


def test_cron_deployment_runs_under_keel_worker(stack, tmp_path, demo_corpus):
    recipe = write_recipe(tmp_path, demo_corpus, ids=["mitre_cwe"])
    dep = last_json(keel(["deploy", "--recipe", str(recipe), "--cron", "* * * * *", "--name", "every-minute",
                          "--until", "legal", "--json"], stack["env"]).stdout)
    with prefect_client(stack["prefect"]) as client:
        d = client.read_deployment(dep["id"])
        assert [s.schedule.cron for s in d.schedules] == ["* * * * *"]
        assert d.global_concurrency_limit is not None and d.global_concurrency_limit.limit == 1
    bad = keel(["deploy", "--recipe", str(recipe), "--cron", "61 * * * *"], stack["env"], check=False)
    assert bad.returncode == 2 and "not a valid cron expression" in bad.stderr
    worker = subprocess.Popen([sys.executable, "-m", "flows.cli", "worker"], cwd=REPO, env=stack["env"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        from prefect.client.schemas.filters import DeploymentFilter

        deadline, done = time.time() + 200, []
        while time.time() < deadline and not done:
            with prefect_client(stack["prefect"]) as client:
                runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id={"any_": [d.id]}))
            done = [r for r in runs if r.state and r.state.is_completed()]
            failed = [r for r in runs if r.state and r.state.is_final() and not r.state.is_completed()]
            assert not failed, [f"{r.name}: {r.state.message}" for r in failed]
            time.sleep(2)
        assert done, "no scheduled run completed within 200 s"
        assert done[0].parameters["until"] == "legal" and done[0].auto_scheduled
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        with prefect_client(stack["prefect"]) as client:
            client.delete_deployment(d.id)


def test_mlflow_basic_auth_can_be_switched_on(tmp_path):
    import urllib.error
    import urllib.request

    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "KEEL_TRACKING_URI")}
    env.update(KEEL_HOME=str(tmp_path / ".keel"), PREFECT_HOME=str(tmp_path / ".keel" / "prefect"))
    ml = free_port()
    keel(["up", "--auth", "--prefect-port", str(free_port()), "--mlflow-port", str(ml)], env)
    try:
        creds_file = tmp_path / ".keel" / "stack" / "mlflow-credentials.json"
        assert oct(creds_file.stat().st_mode & 0o777) == "0o600"
        creds = json.loads(creds_file.read_text())
        api = f"http://127.0.0.1:{ml}/api/2.0/mlflow/experiments/search?max_results=5"
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(api, timeout=10)
        assert denied.value.code == 401
        import base64

        req = urllib.request.Request(api, headers={"Authorization": "Basic " + base64.b64encode(
            f"{creds['username']}:{creds['password']}".encode()).decode()})
        assert urllib.request.urlopen(req, timeout=10).status == 200
        models = keel(["models", "--json"], env)  # keel commands authenticate from the stack's credentials
        assert json.loads(models.stdout.strip().splitlines()[-1]) == []
        logs = "".join(p.read_text(errors="replace") for p in (tmp_path / ".keel" / "stack").glob("*.log"))
        assert creds["password"] not in logs + models.stdout + models.stderr
    finally:
        keel(["down"], env, check=False)
