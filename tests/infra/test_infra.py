"""Scale-out configuration parses and is consistent: Compose stack, Kubernetes manifests and Helm values,
Prefect deployments (prefect.yaml), Dockerfile. (Slurm and PyTorchJob rendering: test_launch.)"""
from __future__ import annotations

import re

import yaml

from tests.conftest import REPO

INFRA = REPO / "infra"


def _compose() -> dict:
    return yaml.safe_load((INFRA / "compose" / "docker-compose.yaml").read_text())


def test_compose_stack_has_every_service_on_loopback_with_secrets_from_env():
    doc = _compose()
    services = doc["services"]
    assert {"postgres", "minio", "prefect-server", "mlflow", "dask-scheduler", "dask-worker",
            "prefect-worker"} <= set(services)
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"
        deps = svc.get("depends_on", [])
        assert set(deps) <= set(services), (name, deps)
        assert "image" in svc or "build" in svc
    text = (INFRA / "compose" / "docker-compose.yaml").read_text()
    for var in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"):  # secrets only by reference
        assert re.search(rf"\$\{{{var}[:?}}]", text) and not re.search(rf"{var}:\s*[A-Za-z0-9]", text)
    assert "postgresql+asyncpg://" in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert "--artifacts-destination" in services["mlflow"]["entrypoint"]
    assert "postgresql://" in " ".join(services["mlflow"]["entrypoint"])
    assert services["prefect-worker"]["entrypoint"][:2] == ["keel", "worker"]
    env = services["prefect-worker"]["environment"]
    assert env["KEEL_DASK_ADDRESS"] == "tcp://dask-scheduler:8786" and env["KEEL_TRACKING_URI"] == "http://mlflow:5000"
    assert (INFRA / "compose" / "initdb" / "10-mlflow.sql").read_text().strip().startswith("--")


def test_dockerfile_copies_what_exists():
    text = (INFRA / "docker" / "Dockerfile").read_text()
    for src in re.findall(r"^COPY (\S+)", text, re.M):
        assert (REPO / src).exists(), src
    assert "USER keel" in text


def _k8s_docs() -> list[dict]:
    docs = []
    for p in sorted((INFRA / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(p.read_text()) if d]
    return docs


def test_kubernetes_manifests_are_consistent():
    docs = _k8s_docs()
    objects = [d for d in docs if "kind" in d]
    kinds = {d["kind"] for d in objects}
    assert {"Namespace", "ConfigMap", "DaskCluster", "ServiceAccount", "Role", "RoleBinding"} <= kinds
    assert "Secret" not in kinds  # credentials are created out of band
    for d in objects:
        assert d["kind"] == "Namespace" or d["metadata"].get("namespace") == "keel", d["metadata"]
    config = next(d for d in objects if d["kind"] == "ConfigMap")["data"]
    dask = next(d for d in objects if d["kind"] == "DaskCluster")
    name = dask["metadata"]["name"]
    port = next(p["port"] for p in dask["spec"]["scheduler"]["service"]["ports"] if p["name"] == "tcp-comm")
    assert config["KEEL_DASK_ADDRESS"] == f"tcp://{name}-scheduler.keel.svc.cluster.local:{port}"
    worker = dask["spec"]["worker"]["spec"]["containers"][0]
    assert worker["command"] == ["dask", "worker"] and "$(DASK_WORKER_NAME)" in worker["args"]
    assert {"configMapRef": {"name": "keel-config"}} in worker["envFrom"]
    role = next(d for d in objects if d["kind"] == "Role")
    assert any("pytorchjobs" in r["resources"] and "create" in r["verbs"] for r in role["rules"])
    values = next(d for d in docs if "worker" in d and "kind" not in d)["worker"]
    assert values["config"]["type"] == "kubernetes" and values["extraEnvVarsCM"] == "keel-config"
    assert values["selfHostedServerApiConfig"]["apiUrl"] == config["PREFECT_API_URL"]


def test_prefect_yaml_deployments_match_the_flow():
    from prefect.client.schemas.schedules import CronSchedule

    from flows.pipeline import UNTIL
    from flows.schedule import DEFAULT_POOL, ENTRYPOINT
    from tasks.recipe import load_recipe

    doc = yaml.safe_load((INFRA / "prefect.yaml").read_text())
    assert doc["prefect-version"] == __import__("prefect").__version__
    assert doc["deployments"]
    for d in doc["deployments"]:
        assert d["entrypoint"] == ENTRYPOINT and d["work_pool"]["name"] == DEFAULT_POOL
        assert d["concurrency_limit"] == 1
        assert set(d["parameters"]) == {"recipe_path", "overrides", "until"} and d["parameters"]["until"] in UNTIL
        load_recipe(REPO / d["parameters"]["recipe_path"], d["parameters"]["overrides"])
        for s in d["schedules"]:
            CronSchedule(cron=s["cron"], timezone=s["timezone"])
    module, attr = ENTRYPOINT.split(":")
    flow = getattr(__import__(module.removesuffix(".py").replace("/", "."), fromlist=[attr]), attr)
    assert flow.name == "keel-pipeline"
    assert set(doc["deployments"][0]["parameters"]) == set(flow.parameters.properties)
