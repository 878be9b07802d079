"""Byte streams of raw files in bounded memory: plain, .gz and .zst decompressed block by block with decompression
bomb and truncation detection, cut into lines with a length cap; the per-file caps (`Limits`) they enforce."""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterator

import zstandard

BLOCK = 1 << 20
ZSTD_INPUT = 16 << 10
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Limits:
    """Per-record and per-file caps that keep a worker's memory bounded whatever a file holds."""

    max_doc_bytes: int
    """Text longer than this is rejected ('oversized')."""
    max_line_bytes: int = 0
    """A JSONL line longer than this is skipped to its end ('line_too_long'); 0: 8 x max_doc_bytes + 1 MiB."""
    max_inflate_ratio: float = 1000.0
    """Decompressed bytes per compressed byte above which (after 64 MiB) a file is a bomb ('decompression_bomb')."""
    max_decompressed_bytes: int = 1 << 40
    """Decompressed bytes read from one file at most."""
    bomb_floor_bytes: int = 64 << 20
    """The inflate ratio is judged once this much was decompressed."""
    max_row_group_bytes: int = 0
    """A Parquet row group whose wanted columns are larger is rejected unread; 0: max(64 MiB, 16 x max_doc_bytes)."""

    @property
    def line_cap(self) -> int:
        return self.max_line_bytes or 8 * self.max_doc_bytes + (1 << 20)

    @property
    def row_group_cap(self) -> int:
        return self.max_row_group_bytes or max(64 << 20, 16 * self.max_doc_bytes)


class Unreadable(Exception):
    """The rest of a file cannot be read (its reason is the reject reason)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


class Counted:
    """A file object that counts the compressed bytes read through it."""

    def __init__(self, raw):
        self.raw, self.bytes = raw, 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.bytes += len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()


def blocks(path: str, raw: Counted, limits: Limits) -> Iterator[bytes]:
    """Decompressed blocks of a plain, .gz or .zst file, with bomb and truncation detection."""
    total = 0

    def guard(block: bytes) -> bytes:
        nonlocal total
        total += len(block)
        if total > limits.max_decompressed_bytes:
            raise Unreadable("decompression_bomb", f"over {limits.max_decompressed_bytes} decompressed bytes")
        if total > limits.bomb_floor_bytes and total > limits.max_inflate_ratio * max(raw.bytes, 1):
            raise Unreadable("decompression_bomb", f"{total} bytes from {raw.bytes} compressed "
                                                   f"(ratio over {limits.max_inflate_ratio:g})")
        return block

    try:
        if path.endswith(".gz"):  # zlib directly: what precedes a truncation is still delivered
            d, pending = zlib.decompressobj(31), False
            while data := raw.read(BLOCK):
                while data:
                    pending = True
                    out = d.decompress(data, BLOCK)
                    data = d.unconsumed_tail
                    if out:
                        yield guard(out)
                    if d.eof:  # a member ended: a following member starts a new decompressor
                        data, pending = d.unused_data, False
                        d = zlib.decompressobj(31)
            if pending:
                raise Unreadable("truncated_file", "gzip stream ends inside a member")
        elif path.endswith(".zst"):
            d, pending = zstandard.ZstdDecompressor().decompressobj(), False
            while data := raw.read(ZSTD_INPUT):  # small inputs: zstd cannot cap one call's output
                while data:
                    pending = True
                    out = d.decompress(data)
                    data = b""
                    for i in range(0, len(out), BLOCK):
                        yield guard(out[i:i + BLOCK])
                    if d.eof:  # a frame ended: a following frame starts a new decompressor
                        data, pending = d.unused_data, False
                        d = zstandard.ZstdDecompressor().decompressobj()
            if pending:
                raise Unreadable("truncated_file", "zstd stream ends inside a frame")
        else:
            while block := raw.read(BLOCK):
                yield guard(block)
    except Unreadable:
        raise
    except (EOFError, OSError, zlib.error, zstandard.ZstdError, ValueError) as exc:  # truncated or corrupt stream
        raise Unreadable("truncated_file", f"{type(exc).__name__}: {exc}") from exc


def lines(chunks: Iterator[bytes], cap: int) -> Iterator[tuple[bytes, bool]]:
    """(line, complete) pairs; a line over `cap` bytes comes back as (its first `cap` bytes, False) and the rest of
    it is skipped without being kept."""
    buf, skipping, first = bytearray(), False, True
    for block in chunks:
        start = 0
        while True:
            nl = block.find(b"\n", start)
            piece = block[start:] if nl < 0 else block[start:nl]
            if not skipping:
                buf += piece[: max(cap + 1 - len(buf), 0)]
            if nl < 0:
                if not skipping and len(buf) > cap:
                    yield bytes(buf[:cap]), False
                    buf.clear()
                    skipping = True
                break
            if skipping:
                skipping = False
            else:
                line = bytes(buf)
                if first and line.startswith(BOM):
                    line = line[3:]
                yield (line, True) if len(line) <= cap else (line[:cap], False)
            first = False
            buf.clear()
            start = nl + 1
    if buf and not skipping:
        line = bytes(buf)
        if first and line.startswith(BOM):
            line = line[3:]
        yield (line, True) if len(line) <= cap else (line[:cap], False)
