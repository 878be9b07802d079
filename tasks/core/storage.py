"""Storage seam: fsspec URIs (local or s3://), content-addressed stage directories, safe paths.

The one place that knows how to read, write, join and list local paths and object-store URIs alike.
A stage writes into `<root>/<stage>/<hash>/` and writes `_SUCCESS` (its typed result as JSON) last. A directory
without the marker is a half-written attempt: it is removed before the stage runs again and never read.
Results refer to files by paths relative to the output root (`StageDir.rel`), resolved with `StageDir.at`.
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


def write_text(uri: str, text: str) -> None:
    write_bytes_atomic(uri, text.encode())


def read_bytes(uri: str) -> bytes:
    fs, path = url_to_fs(uri)
    return fs.cat_file(path)


def copy_to_local(uri: str, local: str) -> str:
    """Copy a (possibly remote) file to a local path; returns the local path."""
    Path(local).parent.mkdir(parents=True, exist_ok=True)
    fs, path = url_to_fs(uri)
    fs.get_file(path, local)
    return local


def write_json(uri: str, obj: Any) -> None:
    write_bytes_atomic(uri, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())


def read_json(uri: str) -> Any:
    fs, path = url_to_fs(uri)
    with fs.open(path, "rb") as f:
        return json.loads(f.read())


def remove_tree(uri: str) -> None:
    """Remove a folder (or file) if it exists."""
    fs, path = url_to_fs(uri)
    if fs.exists(path):
        fs.rm(path, recursive=True)


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
        """Absolute URI of a file of this stage."""
        return join(self.uri, *parts)

    def rel(self, *parts: str) -> str:
        """Output-root-relative path of a file of this stage (what results store)."""
        return posixpath.join(self.stage, self.hash, *parts)

    def at(self, rel: str) -> str:
        """Absolute URI of an output-root-relative path (of this or an upstream stage)."""
        if not rel or rel.startswith("/") or "://" in rel or ".." in rel.split("/"):
            raise ValueError(f"{rel!r} is not a path relative to the output root")
        return join(self.root, *rel.split("/"))

    def local(self, rel: str = "") -> str:
        """A local folder for this stage's files: the stage folder itself, or a scratch mirror for a remote root."""
        uri = self.at(rel) if rel else self.uri
        if not is_remote(uri):
            return uri
        return str(Path(".keel/scratch").resolve() / uri.split("://", 1)[1])

    def fetch(self, rel: str) -> str:
        """A local path holding the files at `rel` (a file or folder): itself for a local output root; for a
        remote one, a local mirror, fetched when absent (another machine may have written it)."""
        local = self.local(rel)
        if is_remote(self.root) and not Path(local).exists():
            fs, path = url_to_fs(self.at(rel))
            if fs.isdir(path):
                fs.get(path.rstrip("/") + "/", local, recursive=True)
            else:
                Path(local).parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(path, local)
        return local

    def fetch_dataset(self, prefix: str) -> str:
        """Local prefix of a megatron indexed dataset (.bin + .idx) stored at an output-root-relative prefix."""
        for ext in (".bin", ".idx"):
            self.fetch(prefix + ext)
        return self.local(prefix)

    def upload(self) -> None:
        """Copy the local mirror of this stage folder to the remote output root (no-op for a local root)."""
        if is_remote(self.uri):
            fs, path = url_to_fs(self.uri)
            fs.put(self.local().rstrip("/") + "/", path, recursive=True)

    def is_done(self) -> bool:
        return exists(self.path(MARKER))

    def marker(self) -> dict:
        return read_json(self.path(MARKER))

    def begin(self) -> None:
        """Remove any half-written attempt, then create the folder."""
        fs, path = url_to_fs(self.uri)
        if fs.exists(path):
            fs.rm(path, recursive=True)
        if not is_remote(self.uri):
            fs.makedirs(path, exist_ok=True)

    def commit(self, result: dict, key: dict | None = None) -> dict:
        """Write the marker last: the stage's typed result (JSON) and the parts of its cache key."""
        marker = {"stage": self.stage, "hash": self.hash, "result": result, "key": key or {}}
        write_json(self.path(MARKER), marker)
        return marker
