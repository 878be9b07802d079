"""Storage seam: fsspec URIs (local or s3://), content-addressed stage directories, safe paths.

The one place that knows how to read, write, join and list local paths and object-store URIs alike.
A stage writes into `<root>/<stage>/<hash>/` and writes `_SUCCESS` (its typed result as JSON) last. A directory
without the marker is a half-written attempt: it is removed before the stage runs again and never read.
Results refer to files by paths relative to the output root (`StageDir.rel`), resolved with `StageDir.at`.
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

MARKER = "_SUCCESS"
HASH_MAX_BYTES = 256 * 2**20
"""Files up to this size get a sha256 in the stage's file manifest (all get their size)."""
VERIFY_HASH_MAX_BYTES = 2**20
"""On a cache hit, files up to this size are re-hashed; larger ones are checked by size (a cheap, complete listing)."""
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


def resolve_data_uri(uri: str, data_root: str, extra_roots: tuple[str, ...] = ()) -> str:
    """Validate a data location taken from a manifest and return an absolute URI.

    Relative paths resolve against `data_root` and may not escape it; absolute local paths must lie inside
    `data_root` or one of `extra_roots` (folders the recipe names, e.g. a system package's documentation);
    remote URIs must use a known fsspec scheme.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError("data uri is empty")
    if "\x00" in uri:
        raise ValueError(f"data uri {uri!r} contains a NUL byte")
    scheme = scheme_of(uri)
    if scheme not in ALLOWED_SCHEMES:
        raise ValueError(f"data uri {uri!r}: scheme {scheme!r} is not allowed; use one of {sorted(ALLOWED_SCHEMES)}")
    if is_remote(uri):
        from tasks.core.secrets import redact, take_uri_credentials

        if ".." in uri.split("://", 1)[1].split("/"):
            raise ValueError(f"data uri {redact(uri)!r} contains '..'")
        return take_uri_credentials(uri, "")  # s3://key:secret@bucket/...: to the environment, out of the URI
    if is_remote(data_root):  # relative to a remote root: may not climb out of it
        if uri.startswith("/") or ".." in uri.split("/"):
            raise ValueError(f"data uri {uri!r} must stay inside the data root {data_root}")
        return join(data_root, uri)
    root = Path(absolute(data_root))
    path = Path(uri.removeprefix("file://"))
    target = (path if path.is_absolute() else root / path).resolve()
    roots = [root] + ([Path(absolute(r)).resolve() for r in extra_roots if not is_remote(r)] if path.is_absolute() else [])
    if not any(target == r or r in target.parents for r in roots):
        raise ValueError(f"data uri {uri!r} resolves to {target}, outside the data root {root}"
                         + (f" and [sources].extra_roots {list(extra_roots)}" if extra_roots else "")
                         + "; move the data under [sources].data_root, or name its folder in [sources].extra_roots")
    return str(target)


def fsync_path(path: str) -> None:
    """Flush a local file (or folder entry) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(uri: str, data: bytes) -> None:
    """Whole or absent after a crash: object stores PUT atomically; local files are written to a temporary name,
    fsynced, renamed, and their folder fsynced."""
    fs, path = url_to_fs(uri)
    if is_remote(uri):
        fs.pipe_file(path, data)
        return
    folder = posixpath.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(folder)


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
            tmp = f"{local}.part-{uuid.uuid4().hex[:8]}"  # renamed into place whole: never half a download
            Path(local).parent.mkdir(parents=True, exist_ok=True)
            if fs.isdir(path):
                fs.get(path.rstrip("/") + "/", tmp, recursive=True)
            else:
                fs.get_file(path, tmp)
            os.replace(tmp, local)
        return local

    def fetch_dataset(self, prefix: str) -> str:
        """Local prefix of a megatron indexed dataset (.bin + .idx) stored at an output-root-relative prefix."""
        for ext in (".bin", ".idx"):
            self.fetch(prefix + ext)
        return self.local(prefix)

    def upload(self, rel: str = "") -> None:
        """Copy the local mirror of this stage folder (or of an output-root-relative path) to the remote output
        root; a no-op for a local root."""
        uri = self.at(rel) if rel else self.uri
        if is_remote(uri):
            fs, path = url_to_fs(uri)
            local = self.local(rel)
            if Path(local).is_dir():
                fs.put(local.rstrip("/") + "/", path, recursive=True)
            else:
                fs.put_file(local, path)

    def is_done(self) -> bool:
        return exists(self.path(MARKER))

    def marker(self) -> dict:
        return read_json(self.path(MARKER))

    def _listing(self, rels: tuple[str, ...]) -> dict[str, int]:
        """{output-root-relative path: size} of every file of this stage folder and of `rels` (folders or files)."""
        out: dict[str, int] = {}
        for rel in ("", *rels):
            uri = self.at(rel) if rel else self.uri
            fs, base = url_to_fs(uri)
            if not fs.exists(base):
                continue
            found = fs.find(base, detail=True) if fs.isdir(base) else {base: fs.info(base)}
            _, root_path = url_to_fs(self.root)
            for p, info in found.items():
                r = posixpath.relpath(p, root_path.rstrip("/")) if is_remote(self.root) else os.path.relpath(p, root_path)
                if posixpath.basename(r) != MARKER:
                    out[r] = int(info.get("size") or 0)
        return out

    def file_manifest(self, rels: tuple[str, ...] = ()) -> dict[str, dict]:
        """Every output file (this folder and `rels`) with its size, and sha256 up to HASH_MAX_BYTES."""
        out = {}
        for r, size in sorted(self._listing(rels).items()):
            out[r] = {"size": size}
            if size <= HASH_MAX_BYTES:
                out[r]["sha256"] = hashlib.sha256(read_bytes(self.at(r))).hexdigest()
        return out

    def verify(self) -> str | None:
        """None when every file the marker lists is present with its size (small files: its sha256), else what
        differs. A stage that fails this is redone, never trusted."""
        marker = self.marker()
        files = marker.get("files")
        if files is None:
            return "the marker has no file manifest"
        listing = self._listing(tuple(marker.get("also", [])))
        for r, f in files.items():
            if r not in listing:
                return f"{r} is missing"
            if listing[r] != f["size"]:
                return f"{r} has {listing[r]} bytes, the marker says {f['size']}"
            if "sha256" in f and f["size"] <= VERIFY_HASH_MAX_BYTES and \
                    hashlib.sha256(read_bytes(self.at(r))).hexdigest() != f["sha256"]:
                return f"{r} does not match its sha256"
        return None

    def begin(self) -> None:
        """Remove any half-written attempt, then create the folder."""
        fs, path = url_to_fs(self.uri)
        if fs.exists(path):
            fs.rm(path, recursive=True)
        if not is_remote(self.uri):
            fs.makedirs(path, exist_ok=True)

    def commit(self, result: dict, key: dict | None = None, also: tuple[str, ...] = ()) -> dict:
        """Write the marker last: the stage's typed result (JSON), the parts of its cache key, and the manifest of
        its files (this folder plus the output-root-relative paths `also`, e.g. a checkpoint kept beside it)."""
        marker = {"stage": self.stage, "hash": self.hash, "result": result, "key": key or {},
                  "also": list(also), "files": self.file_manifest(also)}
        write_json(self.path(MARKER), marker)
        return marker
