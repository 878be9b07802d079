"""Storage seam: fsspec URIs (local or s3://), content-addressed stage directories, safe paths.

A stage writes into `<root>/<stage>/<hash>/` and writes `_SUCCESS` (JSON summary) last. A directory without
the marker is a half-written attempt: it is removed before the stage runs again and never read.
"""
from __future__ import annotations

import json
import posixpath
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

MARKER = "_SUCCESS"
ALLOWED_SCHEMES = {"file", "local", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"}


def url_to_fs(uri: str):
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def join(uri: str, *parts: str) -> str:
    if is_remote(uri):
        return posixpath.join(uri.rstrip("/"), *parts)
    return str(Path(uri.removeprefix("file://")).joinpath(*parts))


def absolute(uri: str) -> str:
    """Local paths made absolute (workers may run elsewhere); remote URIs unchanged."""
    return uri if is_remote(uri) else str(Path(uri.removeprefix("file://")).resolve())


def scheme_of(uri: str) -> str:
    return uri.split("://", 1)[0].lower() if "://" in uri else "file"


def resolve_data_uri(uri: str, data_root: str) -> str:
    """Validate a data location taken from a manifest and return an absolute URI.

    Relative paths resolve against `data_root` and may not escape it; absolute local paths must lie inside
    `data_root`; remote URIs must use a known fsspec scheme.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError("data uri is empty")
    if "\x00" in uri:
        raise ValueError(f"data uri {uri!r} contains a NUL byte")
    scheme = scheme_of(uri)
    if scheme not in ALLOWED_SCHEMES:
        raise ValueError(f"data uri {uri!r}: scheme {scheme!r} is not allowed; use one of {sorted(ALLOWED_SCHEMES)}")
    if is_remote(uri):
        if ".." in uri.split("://", 1)[1].split("/"):
            raise ValueError(f"data uri {uri!r} contains '..'")
        return uri
    if is_remote(data_root):  # relative to a remote root: may not climb out of it
        if uri.startswith("/") or ".." in uri.split("/"):
            raise ValueError(f"data uri {uri!r} must stay inside the data root {data_root}")
        return join(data_root, uri)
    root = Path(absolute(data_root))
    path = Path(uri.removeprefix("file://"))
    target = (path if path.is_absolute() else root / path).resolve()
    if target != root and root not in target.parents:
        raise ValueError(f"data uri {uri!r} resolves to {target}, outside the data root {root}; "
                         "move the data under [sources].data_root or change data_root")
    return str(target)


def write_bytes_atomic(uri: str, data: bytes) -> None:
    fs, path = url_to_fs(uri)
    if is_remote(uri):  # object stores: a PUT is atomic
        fs.pipe_file(path, data)
        return
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    fs.makedirs(posixpath.dirname(path) or ".", exist_ok=True)
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)


def write_json(uri: str, obj: Any) -> None:
    write_bytes_atomic(uri, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())


def read_json(uri: str) -> Any:
    fs, path = url_to_fs(uri)
    with fs.open(path, "rb") as f:
        return json.loads(f.read())


def exists(uri: str) -> bool:
    fs, path = url_to_fs(uri)
    return fs.exists(path)


@dataclass(frozen=True)
class StageDir:
    """The content-addressed output folder of one stage."""

    root: str
    stage: str
    hash: str

    @property
    def uri(self) -> str:
        return join(self.root, self.stage, self.hash)

    def path(self, *parts: str) -> str:
        return join(self.uri, *parts)

    def is_done(self) -> bool:
        return exists(self.path(MARKER))

    def summary(self) -> dict:
        return read_json(self.path(MARKER))

    def begin(self) -> None:
        """Remove any half-written attempt, then create the folder."""
        fs, path = url_to_fs(self.uri)
        if fs.exists(path):
            fs.rm(path, recursive=True)
        if not is_remote(self.uri):
            fs.makedirs(path, exist_ok=True)

    def commit(self, summary: dict) -> dict:
        summary = {**summary, "stage": self.stage, "hash": self.hash, "uri": self.uri}
        write_json(self.path(MARKER), summary)
        return summary
