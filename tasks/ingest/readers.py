"""Readers: raw files (JSONL plain/.gz/.zst, Parquet, folders of text files, WARC) -> a stream of document rows and
reject rows, in bounded memory.

Every record is either a document or a reject with a specific `reject_reason`, and reading goes on after a bad
record: broken JSON, numbers too long for Python, deep nesting, invalid UTF-8 or lone surrogates in any field, NUL
bytes, missing or wrongly typed fields, empty or oversized text. A file stops being read only where it stops being
readable (a truncated or corrupt compressed stream, a decompression bomb): the records before that point are kept
and one `truncated_file` / `decompression_bomb` reject marks the rest. Memory per file is bounded whatever it holds:
lines are read in blocks with a length cap (a longer line is skipped to its end and rejected as `line_too_long`),
decompressed output is capped by size and by its ratio to the compressed input, Parquet is read by row group with
oversized row groups quarantined from their metadata, WARC bodies are read up to the document cap. A UTF-8
byte-order mark is ignored and CRLF line ends are accepted.
"""
from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Iterator

import pandas as pd

from tasks.core.storage import url_to_fs
from tasks.govern.legal import SourceData
from tasks.ingest.streams import BOM, Counted, Limits, Unreadable, blocks, lines  # noqa: F401 (Limits: re-exported)

DOC_COLUMNS = ["doc_id", "source_id", "domain", "license", "native_id", "text", "url", "origin_file", "content_sha256"]
REJECT_COLUMNS = ["source_id", "origin_file", "record", "raw", "reject_step", "reject_reason"]
RAW_KEEP = 2000  # characters of a malformed record kept for inspection
SUFFIXES = {"jsonl": (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".json.gz", ".json.zst", ".ndjson"),
            "parquet": (".parquet",), "text": (".txt", ".md"), "warc": (".warc", ".warc.gz")}
MAX_INT_DIGITS = 4000  # below Python's int-string conversion limit (4300): longer numbers stay strings


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


def _utf8(value) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Collector:
    """Turns raw records into document rows or reject rows; counts what it saw."""

    def __init__(self, source: SourceData, origin: str, limits: Limits, forgotten: tuple = ((), ())):
        self.s, self.origin, self.limits = source, origin, limits
        self.forgotten_ids, self.forgotten_hashes = frozenset(forgotten[0]), frozenset(forgotten[1])
        self.docs: list[dict] = []
        self.rejects: list[dict] = []
        self.seen = 0

    def reject(self, record: int, raw, reason: str) -> None:
        if isinstance(raw, bytes):
            raw = raw[:RAW_KEEP * 4].decode("utf-8", "replace")
        raw = str(raw)[:RAW_KEEP].encode("utf-8", "replace").decode("utf-8")  # storable even if it held surrogates
        self.rejects.append({"source_id": self.s.id, "origin_file": self.origin, "record": record, "raw": raw,
                             "reject_step": "ingest", "reject_reason": reason})

    def add(self, record: int, obj, raw) -> None:
        self.seen += 1
        try:
            reason = self._add(record, obj, raw)
        except Exception as exc:  # noqa: BLE001 - a record never stops a file: it becomes a reject
            reason = f"bad_record:{type(exc).__name__}"
        if reason:
            self.reject(record, raw, reason)

    def _add(self, record: int, obj, raw) -> str | None:
        s = self.s
        if not isinstance(obj, dict):
            return "not_an_object"
        text = obj.get(s.text_field)
        if text is None:
            return "missing_text"
        if not isinstance(text, str):
            return "wrong_type:text"
        if not _utf8(text):
            return "invalid_unicode:text"
        if "\x00" in text:
            return "nul_byte"
        if not text.strip():
            return "empty_text"
        if len(text) > self.limits.max_doc_bytes or len(text.encode("utf-8")) > self.limits.max_doc_bytes:
            return "oversized"
        native = obj.get(s.id_field)
        if native is None:
            native = f"{posixpath.basename(self.origin)}:{record}"
        elif isinstance(native, bool) or not isinstance(native, (str, int)):
            return "wrong_type:id"
        native = str(native)
        if not _utf8(native):
            return "invalid_unicode:id"
        url = obj.get(s.url_field)
        if url is not None and not isinstance(url, str):
            return "wrong_type:url"
        if url is not None and not _utf8(url):
            return "invalid_unicode:url"
        lic = obj.get(s.license_field) or s.license
        if not isinstance(lic, str):
            return "wrong_type:license"
        if not _utf8(lic):
            return "invalid_unicode:license"
        did, sha = doc_id(s.id, native), sha256(text)
        if did in self.forgotten_ids or sha in self.forgotten_hashes:  # opted out: its id and hash, not its text
            self.reject(record, f"doc_id={did} content_sha256={sha}",
                        "optout_doc" if did in self.forgotten_ids else "optout_content")
            return None
        self.docs.append({"doc_id": did, "source_id": s.id, "domain": s.domain, "license": lic,
                          "native_id": native, "text": text, "url": url, "origin_file": self.origin,
                          "content_sha256": sha})
        return None

    def take(self, rows: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The first `rows` documents collected (all when None) and every reject so far; the caller writes them
        out, so memory stays bounded."""
        rows = len(self.docs) if rows is None else rows
        docs = pd.DataFrame(self.docs[:rows], columns=DOC_COLUMNS).astype({"url": "object"})
        rejects = pd.DataFrame(self.rejects, columns=REJECT_COLUMNS)
        self.docs, self.rejects = self.docs[rows:], []
        return docs, rejects


def _bounded_int(digits: str):
    return int(digits) if len(digits) <= MAX_INT_DIGITS else digits


def _read_jsonl(c: Collector, uri: str) -> Iterator[None]:
    fs, path = url_to_fs(uri)
    raw = Counted(fs.open(path, "rb"))
    n = 0
    try:
        for n, (line, complete) in enumerate(lines(blocks(path, raw, c.limits), c.limits.line_cap), start=1):
            if not complete:
                c.seen += 1
                c.reject(n, line, "line_too_long")
            elif line.strip():
                _json_record(c, n, line)
            if n % 256 == 0:
                yield
    except Unreadable as exc:
        c.reject(n + 1, str(exc), exc.reason)
    finally:
        raw.close()


def _json_record(c: Collector, n: int, line: bytes) -> None:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        c.seen += 1
        c.reject(n, line, "invalid_utf8")
        return
    try:
        obj = json.loads(text, parse_int=_bounded_int)
    except RecursionError:
        c.seen += 1
        c.reject(n, text, "broken_json:too_deep")
        return
    except ValueError:
        c.seen += 1
        c.reject(n, text, "broken_json")
        return
    c.add(n, obj, text)


def _read_parquet(c: Collector, uri: str) -> Iterator[None]:
    """Row group by row group; a row group whose text column alone would exceed the memory budget is rejected
    from its metadata (one reject row per document it holds) without being read."""
    import pyarrow.parquet as pq

    fs, path = url_to_fs(uri)
    try:
        pf = pq.ParquetFile(fs.open(path, "rb"))
    except Exception as exc:  # noqa: BLE001 - any unreadable file becomes one reject
        c.seen += 1
        c.reject(0, f"{type(exc).__name__}: {exc}", "unreadable_file")
        return
    names = pf.schema_arrow.names
    wanted = [f for f in (c.s.text_field, c.s.id_field, c.s.url_field, c.s.license_field) if f in names]
    budget = c.limits.row_group_cap
    record = 0
    for g in range(pf.num_row_groups):
        meta = pf.metadata.row_group(g)
        size = sum(meta.column(i).total_uncompressed_size for i in range(meta.num_columns)
                   if meta.column(i).path_in_schema in wanted)
        if size > budget:
            for _ in range(meta.num_rows):
                record += 1
                c.seen += 1
                c.reject(record, f"row group {g}: {size} bytes", "row_group_too_large")
            yield
            continue
        try:
            for batch in pf.iter_batches(batch_size=64, row_groups=[g], columns=wanted):
                for obj in batch.to_pylist():
                    record += 1
                    c.add(record, obj, json.dumps(obj, default=str)[:RAW_KEEP])
                yield
        except Exception as exc:  # noqa: BLE001 - a corrupt row group: its rows become one reject each
            for _ in range(record, sum(pf.metadata.row_group(i).num_rows for i in range(g + 1))):
                record += 1
                c.seen += 1
                c.reject(record, f"{type(exc).__name__}: {exc}", "unreadable_row_group")


def _read_text(c: Collector, uri: str) -> Iterator[None]:
    fs, path = url_to_fs(uri)
    with fs.open(path, "rb") as f:
        data = f.read(c.limits.max_doc_bytes + 1)
    if data.startswith(BOM):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        c.seen += 1
        c.reject(1, data, "invalid_utf8")
        return
    c.add(1, {c.s.text_field: text, c.s.id_field: posixpath.basename(path)}, text[:RAW_KEEP])
    yield


def _read_warc(c: Collector, uri: str) -> Iterator[None]:
    from warcio.archiveiterator import ArchiveIterator

    fs, path = url_to_fs(uri)
    n = 0
    try:
        with fs.open(path, "rb") as f:
            for n, rec in enumerate(ArchiveIterator(f), start=1):
                if rec.rec_type not in ("response", "resource", "conversion"):
                    continue
                body = rec.content_stream().read(c.limits.max_doc_bytes + 1)
                url = rec.rec_headers.get_header("WARC-Target-URI")
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    c.seen += 1
                    c.reject(n, body, "invalid_utf8")
                    continue
                rid = rec.rec_headers.get_header("WARC-Record-ID") or f"{n}"
                c.add(n, {c.s.text_field: text, c.s.id_field: rid, c.s.url_field: url}, text[:RAW_KEEP])
                if n % 100 == 0:
                    yield
    except Exception as exc:  # noqa: BLE001 - broken archives become one reject
        c.seen += 1
        c.reject(n + 1, f"{type(exc).__name__}: {exc}", "truncated_file")


READERS = {"jsonl": _read_jsonl, "parquet": _read_parquet, "text": _read_text, "warc": _read_warc}


def stream_file(uri: str, source: SourceData, limits: Limits, chunk_rows: int,
                forgotten: tuple = ((), ())) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """(documents, rejects) frames of one file: documents `chunk_rows` at a time (the last chunk smaller).
    `forgotten`: (doc ids, content hashes) opted out: rejected as they are read, their text kept nowhere."""
    c = Collector(source, uri, limits, forgotten)
    for _ in READERS[source.format](c, uri):
        while len(c.docs) >= chunk_rows:
            yield c.take(chunk_rows)
        if len(c.rejects) >= chunk_rows:
            yield c.take(0)
    while len(c.docs) >= chunk_rows:
        yield c.take(chunk_rows)
    yield c.take()


def read_file(uri: str, source: SourceData, max_bytes: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole file as two frames (small files and tests; the ingest stage streams)."""
    parts = list(stream_file(uri, source, Limits(max_doc_bytes=max_bytes), 1 << 62))
    return (pd.concat([d for d, _ in parts], ignore_index=True).astype({"url": "object"}),
            pd.concat([r for _, r in parts], ignore_index=True))
