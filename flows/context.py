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
