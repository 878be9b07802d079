"""Running one stage inside the flow: its Prefect task (with the recipe's retry policy), its cache decision, its
nested MLflow run, and the record of its result for the stages after it.

`run_stage(ctx, STAGE, cfg, inputs)` computes the stage's key (tasks/core/stage.py), returns the typed result of
a finished stage from its marker (status `cached`) or runs it into a fresh folder and commits the marker last
(status `completed`). What the stage means is in tasks/; this module only wires it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows import publish
from tasks.core.cluster import Cluster
from tasks.core.config import as_dict
from tasks.core.stage import Counts, Runtime, StageDef
from tasks.core.storage import StageDir, absolute
from tasks.core.typed import dump, load
from tasks.govern.contracts import ContractError
from tasks.recipe import Recipe
from tasks.track.tracking import NoopTracker

log = logging.getLogger("keel")
R = TypeVar("R")


@dataclass
class RunContext:
    recipe: Recipe
    tracker: Any = field(default_factory=NoopTracker)
    cluster: Cluster | None = None
    logger: Any = log
    run_info: dict[str, str] = field(default_factory=dict)
    retry: dict[str, Any] = field(default_factory=dict)
    lock: Any = None
    """The output-root lock (flows/locks.RootLock) whose fence is checked before every marker."""
    hashes: dict[str, str] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    counts: dict[str, Counts] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def root(self) -> str:
        return absolute(self.recipe.run.output_root)


# Exceptions worth a retry: storage/network outages and lost workers. Contract failures, refused sources,
# bad recipes and training failures are not retried (they would fail the same way again).
_TRANSIENT = {"ConnectionError", "TimeoutError", "BotoCoreError", "ClientConnectorError", "ServerDisconnectedError",
              "ClientOSError", "FSTimeoutError", "KilledWorker", "CommClosedError", "EndpointConnectionError",
              "ReadTimeoutError", "IncompleteRead"}
_PERMANENT_OS = {"PermissionError", "IsADirectoryError", "NotADirectoryError"}


def is_transient(exc: BaseException | None) -> bool:
    """True for errors that a retry can cure: network and storage outages (any OSError but permission or
    path-shape errors, which also covers object stores answering 'not found' while they restart), lost Dask
    workers. Follows the exception chain."""
    seen = 0
    while exc is not None and seen < 8:
        names = {c.__name__ for c in type(exc).__mro__}
        if names & _TRANSIENT or ("OSError" in names and not names & _PERMANENT_OS):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def retry_options(retries: int, first_delay_s: float) -> dict:
    """Prefect task options: exponential backoff with jitter, only on transient errors."""
    def condition(task, task_run, state) -> bool:
        try:
            exc = state.result(raise_on_failure=False)
        except BaseException as e:  # noqa: BLE001 - the state holds no readable result: judge the error itself
            exc = e
        return isinstance(exc, BaseException) and is_transient(exc)

    return {"retries": max(0, int(retries)), "retry_jitter_factor": 0.2, "retry_condition_fn": condition,
            "retry_delay_seconds": [first_delay_s * 2 ** i for i in range(max(1, int(retries)))]}


def _execute(ctx: RunContext, stage: StageDef, cfg: Any, inputs: Any, name: str) -> Any:
    key, parts = stage.key(name, cfg, inputs)
    sd = StageDir(ctx.root, name, key)
    fence = ctx.lock.fence() if ctx.lock is not None else ("", "")
    rt = Runtime(cluster=ctx.cluster, log=ctx.logger.info, tracker=ctx.tracker, run_info=ctx.run_info, fence=fence)
    t0 = time.perf_counter()
    with ctx.tracker.stage(name, tags={"keel.stage_hash": key}) as t:
        problem = sd.verify() if not stage.always_run and sd.is_done() else "not run"
        if problem is None:
            result, status = load(stage.result, sd.marker()["result"], f"{name} marker"), "cached"
            ctx.logger.info(f"{name}: cached ({key}) at {sd.uri}")
        else:
            if problem != "not run":
                ctx.logger.warning(f"{name}: the finished stage at {sd.uri} cannot be trusted ({problem}): redoing it")
            ctx.logger.info(f"{name}: running ({key})")
            if not stage.always_run:
                sd.begin()
            try:
                result = stage.run(cfg, inputs, sd, rt)
            except ContractError as exc:
                publish.contract_failure(t, name, exc)
                raise
            if not stage.always_run:
                if ctx.lock is not None:
                    ctx.lock.check()  # the fence: never write a marker into a root another run took
                sd.commit(dump(result), parts, stage.outputs_beside(result) if stage.outputs_beside else ())
            status = "cached" if getattr(result, "reused", False) else "completed"
        if cfg is not None:
            t.log_params({name: as_dict(cfg)})
        t.set_tags({"keel.status": status, "keel.stage_uri": sd.uri})
        t.log_dict({"result": dump(result), "key": parts}, f"{name}_result.json")
        publish.log_stage(t, name, result, sd)
    ctx.hashes[name], ctx.status[name], ctx.results[name] = key, status, result
    ctx.timings[name] = time.perf_counter() - t0
    if isinstance(getattr(result, "counts", None), Counts):
        ctx.counts[name] = result.counts
    return result


@task(name="stage", cache_policy=NO_CACHE, retries=0)
def _stage_task(ctx: RunContext, stage: StageDef, cfg: Any, inputs: Any, name: str) -> Any:
    return _execute(ctx, stage, cfg, inputs, name)


def run_stage(ctx: RunContext, stage: StageDef, cfg: Any, inputs: Any, name: str = "") -> Any:
    """Run (or reuse) one stage as a Prefect task named after it, with the run's retry policy."""
    name = name or stage.name
    return _stage_task.with_options(name=name, **ctx.retry)(ctx, stage, cfg, inputs, name)
