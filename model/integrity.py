"""Integrity of what is loaded: files are checked against the sha256 recorded when they were written, before
anything parses them. Pure Python (hashlib)."""
from __future__ import annotations

import hashlib
from pathlib import Path


CHECKPOINT_MANIFEST = "keel_manifest.json"
"""Beside every checkpoint's files: each file's size and sha256 (model/checkpoint.py writes it)."""


class IntegrityError(ValueError):
    """A file differs from what was recorded when it was written: it is not loaded."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def read_verified(path: str | Path, sha256: str, what: str) -> bytes:
    """The bytes of `path` if they hash to `sha256` (the bytes checked are the bytes returned)."""
    blob = Path(path).read_bytes()
    if hashlib.sha256(blob).hexdigest() != sha256:
        raise IntegrityError(f"{what} {path} refused: it does not match the sha256 recorded when it was written "
                             f"({sha256[:16]}…); it was changed or replaced since")
    return blob
