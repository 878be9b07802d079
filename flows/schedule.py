"""Scheduled runs: `keel deploy` registers a Prefect deployment of the pipeline on a process work pool, and
`keel worker` runs a Prefect process worker that executes its runs (each in its own process, from this
checkout). The same deployments are expressed declaratively in infra/prefect.yaml for `prefect deploy`.

Guards: one run at a time per deployment (deployment concurrency limit 1, later runs queue), one run at a time
per output root across deployments (flows/locks.py), and stage retries with backoff on transient errors.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENTRYPOINT = "flows/pipeline.py:keel_pipeline"
DEFAULT_POOL = "keel"


def require_api() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise ValueError("scheduled runs need a Prefect server: start one with `keel up` "
                         "(or set PREFECT_API_URL to an existing server)")
    return url


def ensure_pool(name: str = DEFAULT_POOL) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            pass


def deploy(recipe: str, cron: str, name: str = "", overrides: list[str] | None = None, until: str = "",
           pool: str = DEFAULT_POOL, timezone: str = "UTC", paused: bool = False) -> dict:
    """Register (or update) a deployment of keel-pipeline with a cron schedule; returns its id and name."""
    from prefect import flow
    from prefect.client.schemas.schedules import CronSchedule

    from flows.pipeline import UNTIL
    from tasks.recipe import load_recipe

    require_api()
    try:
        schedule = CronSchedule(cron=cron, timezone=timezone)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"not a valid cron expression: {cron!r}") from exc
    if until not in UNTIL:
        raise ValueError(f"until must be one of {UNTIL}")
    recipe_path = str(Path(recipe).resolve())
    r = load_recipe(recipe_path, overrides or [])  # refuse a broken recipe now, not at 3 a.m.
    name = name or r.run.name
    ensure_pool(pool)
    f = flow.from_source(source=str(REPO), entrypoint=ENTRYPOINT)
    dep_id = f.deploy(name=name, work_pool_name=pool, schedule=schedule,
                      parameters={"recipe_path": recipe_path, "overrides": list(overrides or []), "until": until},
                      concurrency_limit=1, paused=paused, build=False, push=False, print_next_steps=False,
                      tags=["keel", r.run.name], description=f"keel pipeline on {recipe_path} ({cron})")
    return {"id": str(dep_id), "name": f"keel-pipeline/{name}", "pool": pool, "cron": cron,
            "recipe": recipe_path, "output_root": r.run.output_root}


def worker_argv(pool: str = DEFAULT_POOL, limit: int = 1, run_once: bool = False) -> list[str]:
    argv = [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", pool, "--type", "process",
            "--limit", str(limit)]
    return argv + (["--run-once"] if run_once else [])


def worker(pool: str = DEFAULT_POOL, limit: int = 1, run_once: bool = False) -> int:
    """Replace this process with a Prefect process worker polling `pool`."""
    require_api()
    ensure_pool(pool)
    os.environ.setdefault("PREFECT_WORKER_QUERY_SECONDS", "5")
    argv = worker_argv(pool, limit, run_once)
    os.chdir(REPO)
    os.execve(argv[0], argv, os.environ.copy())
    return 0  # not reached
