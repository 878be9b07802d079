"""The stage seam: what every stage declares, and the cache key computed from it.

A stage is one module (or package) under tasks/ with one entry

    run(cfg: <its typed config>, inputs: <typed upstream results>, out: StageDir, rt: Runtime) -> <Result>

and a `STAGE = StageDef(...)` naming its result type, the modules it starts in subprocesses and the data files
it reads. The result is a frozen dataclass: it is what the stage marker stores (tasks/core/typed.py) and what
downstream stages receive; nothing else passes between stages. Paths inside results are relative to the output
root, so a marker means the same on every machine.

The cache key of a run of a stage = its name + the part of its config that shapes its output + the content of its
inputs (upstream results that point at files carry their stage's path, hence its key; the others, such as the legal
stage's decisions, count by value) + the source of its import closure + the versions of the libraries that shape
its output + the content of the data files it reads (tasks/core/cachekey.py). A finished stage is reused only if
the files its marker lists are still there as written.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from tasks.core import cachekey
from tasks.core.config import as_dict, stable_hash
from tasks.core.typed import dump

log = logging.getLogger("keel")


@dataclass(frozen=True)
class Counts:
    """Documents a stage received, kept and rejected (conservation: received == kept + rejected)."""

    received: int
    kept: int
    rejected: int

    def __post_init__(self):
        if self.received != self.kept + self.rejected:
            raise AssertionError(f"conservation violated: {self.received} in != {self.kept} kept + {self.rejected} rejected")

    @classmethod
    def passed(cls, n: int) -> "Counts":
        """A check that keeps everything it sees."""
        return cls(n, n, 0)

    def row(self) -> dict[str, int]:
        return {"in": self.received, "kept": self.kept, "rejected": self.rejected}


@dataclass
class Runtime:
    """What a stage may use besides its inputs: the Dask cluster, a log line sink, the tracker (register only)."""

    cluster: Any = None
    log: Callable[[str], None] = log.info
    tracker: Any = None
    run_info: dict[str, str] = field(default_factory=dict)
    """Facts about this run that are not inputs (flow run id and URL): never part of a cache key."""
    fence: tuple[str, str] = ("", "")
    """(local path of the output-root lock's owner record, this run's token), for processes that write progress
    pointers (training checkpoints) to check they still own the root; ('', '') when there is none."""


@dataclass(frozen=True)
class StageDef:
    name: str
    """Default stage name (folder under the output root); a flow may run one definition under several names."""
    run: Callable[..., Any]
    """run(cfg, inputs, out, rt) -> result."""
    result: type
    """The result dataclass (what the marker stores)."""
    subprocess_modules: tuple[str, ...] = ()
    """Modules the stage runs in other processes (`python -m ...`): part of its code."""
    reads: Callable[[Any, Any], Any] | None = None
    """reads(cfg, inputs) -> a JSON fingerprint of the data it reads besides its inputs: the content hashes of
    word lists, policies and suites (cachekey.file_hashes), or a listing of raw source files: part of its key."""
    extra_code: tuple[str, ...] = field(default=())
    """Modules read as data (not imported) that shape the output, e.g. a models-from-code file."""
    always_run: bool = False
    """Run even when a marker exists (the stage checks an external source of truth itself, e.g. the registry)."""
    outputs_beside: Callable[[Any], tuple[str, ...]] | None = None
    """outputs_beside(result) -> output-root-relative paths outside the stage folder that the result refers to (a
    checkpoint kept where a redo does not wipe it): listed in the marker's file manifest and verified with it."""
    key_config: Callable[[Any], Any] | None = None
    """key_config(cfg) -> the part of the config that shapes the output (default: all of it). Operational settings
    (timeouts, where a job runs) stay out, so changing them resumes the same work instead of starting anew."""

    @property
    def code_roots(self) -> tuple[str, ...]:
        return (self.run.__module__, *self.subprocess_modules, *self.extra_code)

    def key_parts(self, name: str, cfg: Any, inputs: Any) -> dict[str, Any]:
        shaping = self.key_config(cfg) if self.key_config and cfg is not None else cfg
        return {"stage": name, "config": as_dict(shaping) if shaping is not None else None,
                "inputs": dump(inputs) if inputs is not None else None,
                "code": cachekey.code_hash(self.code_roots), "libraries": cachekey.library_versions(self.code_roots),
                "data": self.reads(cfg, inputs) if self.reads else None}

    def key(self, name: str, cfg: Any, inputs: Any) -> tuple[str, dict[str, Any]]:
        """(hash, the parts it was made of: config, inputs, code, libraries, data read)."""
        parts = self.key_parts(name, cfg, inputs)
        return stable_hash(parts), {k: (v if k in ("stage", "code", "libraries") else stable_hash(v))
                                    for k, v in parts.items()}
