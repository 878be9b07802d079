"""Secrets from Prefect Secret blocks, as environment variables of this run (and of the processes it starts:
Dask workers, torchrun). A recipe names blocks, never values:

    [run]
    secret_blocks = ["keel-s3"]      # a Secret block holding {"AWS_ACCESS_KEY_ID": "...", "AWS_SECRET_ACCESS_KEY": "..."}

Create one with `prefect block create secret` in the UI, or in Python:
    Secret(value={"AWS_SECRET_ACCESS_KEY": "..."}).save("keel-s3")
Variables already set in the environment win. Values are never logged, tracked or returned.
"""
from __future__ import annotations

import os
import re

from tasks.core.secrets import register

_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def apply_secret_blocks(names: list[str]) -> list[str]:
    """Load each Secret block (a JSON object of NAME -> value) into os.environ; returns the variable names set."""
    if not names:
        return []
    from prefect.blocks.system import Secret

    applied = []
    for name in names:
        value = Secret.load(name).get()
        if not isinstance(value, dict):
            raise ValueError(f"Secret block {name!r} must hold a JSON object of ENV_NAME -> value")
        register(*(str(v) for v in value.values()))  # masked wherever it could appear (tasks/core/secrets.py)
        for key, secret in value.items():
            if not _NAME.match(key):
                raise ValueError(f"Secret block {name!r}: {key!r} is not an environment variable name")
            if key not in os.environ:
                os.environ[key] = str(secret)
                applied.append(key)
    return applied
