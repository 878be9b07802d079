"""Run context and the stage runner shared by every stage: content-addressed caching, MLflow nesting, counts.

`run_stage` computes the stage hash from its config, its upstream hashes and the source of the code that
produces it; a finished stage (marker present) is returned from its summary without recomputation.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from model.config import Recipe, stable_hash
from tasks.cluster import Cluster
from tasks.storage import StageDir, absolute
from tasks.tracking import NoopTracker

log = logging.getLogger("keel")


def code_version(modules: list[str]) -> str:
    """Hash of the source files of `modules` (found without importing them)."""
    h = hashlib.sha256()
    for m in sorted(modules):
        spec = importlib.util.find_spec(m)
        if spec is None or spec.origin is None:
            raise ValueError(f"module {m} not found")
        with open(spec.origin, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


@dataclass
class RunContext:
    recipe: Recipe
    tracker: Any = field(default_factory=NoopTracker)
    cluster: Cluster | None = None
    logger: Any = log
    hashes: dict[str, str] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    counts: dict[str, dict] = field(default_factory=dict)
    summaries: dict[str, dict] = field(default_factory=dict)
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


def run_stage(ctx: RunContext, name: str, config: dict, upstream: list[str], code: list[str],
              fn: Callable[[StageDir], dict], log_fn: Callable[[dict], None] | None = None) -> dict:
    """Run (or reuse) one stage. `fn(stage_dir)` returns a JSON-able summary, optionally with `counts`."""
    h = stable_hash(name, config, [ctx.hashes[u] for u in upstream], code_version(code))
    stage = StageDir(ctx.root, name, h)
    t0 = time.perf_counter()
    with ctx.tracker.stage(name, tags={"keel.stage_hash": h}) as t:
        if stage.is_done():
            summary, status = stage.summary(), "cached"
            ctx.logger.info(f"{name}: cached ({h}) at {stage.uri}")
        else:
            ctx.logger.info(f"{name}: running ({h})")
            stage.begin()
            summary, status = stage.commit(fn(stage)), "completed"
        t.log_params({name: config})
        t.set_tags({"keel.status": status, "keel.stage_uri": stage.uri})
        if "counts" in summary:
            t.log_metrics({f"{k}": v for k, v in summary["counts"].items()})
        t.log_dict(summary, f"{name}_summary.json")
        if log_fn:
            log_fn(summary)
    ctx.hashes[name], ctx.status[name], ctx.summaries[name] = h, status, summary
    ctx.timings[name] = time.perf_counter() - t0
    if "counts" in summary:
        ctx.counts[name] = summary["counts"]
    return summary
