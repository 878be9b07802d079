"""Readers: raw files (JSONL plain/.gz/.zst, Parquet, folders of text files) -> document frames + rejects.

Every record read is either a document row or a reject row with `reject_reason`; a reader never raises on bad
data (broken JSON, invalid UTF-8, NUL bytes, missing or wrongly typed fields, empty or oversized text,
truncated compressed files).
"""
from __future__ import annotations

import hashlib
import json
import posixpath

import pandas as pd
import zstandard

from tasks.core.storage import url_to_fs
from tasks.govern.legal import SourceData

DOC_COLUMNS = ["doc_id", "source_id", "domain", "license", "native_id", "text", "url", "origin_file", "content_sha256"]
REJECT_COLUMNS = ["source_id", "origin_file", "record", "raw", "reject_step", "reject_reason"]
RAW_KEEP = 2000  # characters of a malformed record kept for inspection
SUFFIXES = {"jsonl": (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".json.gz", ".json.zst", ".ndjson"),
            "parquet": (".parquet",), "text": (".txt", ".md"), "warc": (".warc", ".warc.gz")}


def doc_id(source_id: str, native_id: str) -> str:
    return hashlib.sha256(f"{source_id}\x1f{native_id}".encode()).hexdigest()[:32]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def list_files(uri: str, fmt: str) -> list[str]:
    """Data files under `uri` (a file or a folder), sorted, as full URIs."""
    fs, path = url_to_fs(uri)
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    prefix = "" if proto in ("file", "local") else f"{proto}://"
    if fs.isfile(path):
        return [prefix + path]
    files = [f for f in fs.find(path) if f.endswith(SUFFIXES[fmt]) and not posixpath.basename(f).startswith((".", "_"))]
    return sorted(prefix + f for f in files)


class _Collector:
    def __init__(self, source: SourceData, origin: str, max_bytes: int):
        self.s, self.origin, self.max_bytes = source, origin, max_bytes
        self.docs: list[dict] = []
        self.rejects: list[dict] = []

    def reject(self, record: int, raw, reason: str) -> None:
        if isinstance(raw, bytes):
            raw = raw[:RAW_KEEP * 4].decode("utf-8", "replace")
        self.rejects.append({"source_id": self.s.id, "origin_file": self.origin, "record": record,
                             "raw": str(raw)[:RAW_KEEP], "reject_step": "ingest", "reject_reason": reason})

    def add(self, record: int, obj, raw) -> None:
        s = self.s
        if not isinstance(obj, dict):
            return self.reject(record, raw, "not_an_object")
        text = obj.get(s.text_field)
        if text is None:
            return self.reject(record, raw, "missing_text")
        if not isinstance(text, str):
            return self.reject(record, raw, "wrong_type:text")
        if "\x00" in text:
            return self.reject(record, raw, "nul_byte")
        if not text.strip():
            return self.reject(record, raw, "empty_text")
        if len(text.encode("utf-8", "surrogatepass")) > self.max_bytes:
            return self.reject(record, text[:RAW_KEEP], "oversized")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return self.reject(record, raw, "invalid_utf8")
        native = obj.get(s.id_field)
        if native is None:
            native = f"{posixpath.basename(self.origin)}:{record}"
        elif not isinstance(native, (str, int)):
            return self.reject(record, raw, "wrong_type:id")
        url = obj.get(s.url_field)
        if url is not None and not isinstance(url, str):
            return self.reject(record, raw, "wrong_type:url")
        lic = obj.get(s.license_field) or s.license
        if not isinstance(lic, str):
            return self.reject(record, raw, "wrong_type:license")
        native = str(native)
        self.docs.append({"doc_id": doc_id(s.id, native), "source_id": s.id, "domain": s.domain,
                          "license": lic, "native_id": native, "text": text, "url": url,
                          "origin_file": self.origin, "content_sha256": sha256(text)})

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        docs = pd.DataFrame(self.docs, columns=DOC_COLUMNS).astype({"url": "object"})
        return docs, pd.DataFrame(self.rejects, columns=REJECT_COLUMNS)


def _open_lines(fs, path: str):
    """Binary line stream of a plain, .gz or .zst file."""
    import gzip

    raw = fs.open(path, "rb")
    if path.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)
    if path.endswith(".zst"):
        return _ZstdLines(raw)
    return raw


class _ZstdLines:
    """Lines of a (multi-frame) zstd stream; raises EOFError when the last frame is cut short, which
    zstandard's stream_reader reports as a clean end of file."""

    def __init__(self, raw, chunk: int = 1 << 20):
        self.raw, self.chunk = raw, chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.raw.close()

    def _blocks(self):
        d, pending = zstandard.ZstdDecompressor().decompressobj(), False
        while True:
            data = self.raw.read(self.chunk)
            if not data:
                break
            while data:
                pending = True
                out = d.decompress(data)
                if out:
                    yield out
                data = b""
                if d.eof:
                    data, pending = d.unused_data, False
                    d = zstandard.ZstdDecompressor().decompressobj()
        if pending:
            raise EOFError("zstd stream ends inside a frame (truncated file)")

    def __iter__(self):
        rest = b""
        for block in self._blocks():
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            for line in lines:
                yield line + b"\n"
        if rest:
            yield rest


def _read_jsonl(c: _Collector, uri: str) -> None:
    fs, path = url_to_fs(uri)
    n = 0
    try:
        with _open_lines(fs, path) as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError:
                    c.reject(n, line, "invalid_utf8")
                    continue
                try:
                    obj = json.loads(text)
                except (json.JSONDecodeError, RecursionError):
                    c.reject(n, text, "broken_json")
                    continue
                c.add(n, obj, text)
    except (EOFError, OSError, ValueError, zstandard.ZstdError) as exc:  # truncated gzip/zstd, corrupt stream
        c.reject(n + 1, f"{type(exc).__name__}: {exc}", "truncated_file")


def _read_parquet(c: _Collector, uri: str) -> None:
    import pyarrow.parquet as pq

    fs, path = url_to_fs(uri)
    try:
        table = pq.read_table(path, filesystem=fs)
    except Exception as exc:  # noqa: BLE001 - any unreadable file becomes one reject
        c.reject(0, f"{type(exc).__name__}: {exc}", "unreadable_file")
        return
    for n, obj in enumerate(table.to_pylist(), start=1):
        c.add(n, obj, json.dumps(obj, default=str)[:RAW_KEEP])


def _read_text(c: _Collector, uri: str) -> None:
    fs, path = url_to_fs(uri)
    with fs.open(path, "rb") as f:
        data = f.read(c.max_bytes + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        c.reject(1, data, "invalid_utf8")
        return
    c.add(1, {c.s.text_field: text, c.s.id_field: posixpath.basename(path)}, text[:RAW_KEEP])


def _read_warc(c: _Collector, uri: str) -> None:
    from warcio.archiveiterator import ArchiveIterator

    fs, path = url_to_fs(uri)
    n = 0
    try:
        with fs.open(path, "rb") as f:
            for n, rec in enumerate(ArchiveIterator(f), start=1):
                if rec.rec_type not in ("response", "resource", "conversion"):
                    continue
                body = rec.content_stream().read(c.max_bytes + 1)
                url = rec.rec_headers.get_header("WARC-Target-URI")
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    c.reject(n, body, "invalid_utf8")
                    continue
                rid = rec.rec_headers.get_header("WARC-Record-ID") or f"{n}"
                c.add(n, {c.s.text_field: text, c.s.id_field: rid, c.s.url_field: url}, text[:RAW_KEEP])
    except Exception as exc:  # noqa: BLE001 - broken archives become one reject
        c.reject(n + 1, f"{type(exc).__name__}: {exc}", "truncated_file")


READERS = {"jsonl": _read_jsonl, "parquet": _read_parquet, "text": _read_text, "warc": _read_warc}


def read_file(uri: str, source: SourceData, max_bytes: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read one file of a source (its manifest names the format and the field names)."""
    c = _Collector(source, uri, max_bytes)
    READERS[source.format](c, uri)
    return c.frames()
