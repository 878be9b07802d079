"""Hostile files: every good record is kept, every bad one rejected with its reason, reading goes on after a bad
record, and memory stays bounded (line caps, decompression bombs, oversized row groups). Each test builds files
whose expected counts it knows, independently of the reader."""
from __future__ import annotations

import dataclasses
import gzip
import json
import resource
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings, strategies as st

from tasks.govern.legal import SourceData
from tasks.ingest.readers import Limits, read_file, stream_file

SRC = SourceData(id="t", domain="general", license="MIT", format="jsonl", data_uri="", text_field="text",
                 id_field="id", url_field="url", license_field="license")


def _rec(**kw) -> bytes:
    return json.dumps(kw).encode()


def _read(path, fmt="jsonl", **limits):
    parts = list(stream_file(str(path), dataclasses.replace(SRC, format=fmt), Limits(**{"max_doc_bytes": 10_000,
                                                                                         **limits}), 1 << 30))
    docs = [d for frame, _ in parts for d in frame.to_dict("records")]
    rejects = [r for _, frame in parts for r in frame.to_dict("records")]
    return docs, rejects


def test_a_bom_and_crlf_lose_nothing(tmp_path):
    p = tmp_path / "bom.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + _rec(id="a", text="first") + b"\r\n" + _rec(id="b", text="second") + b"\r\n")
    docs, rejects = _read(p)
    assert [d["native_id"] for d in docs] == ["a", "b"] and rejects == []


@pytest.mark.parametrize("bad, reason", [
    (b'{"id": "x", "text": "t", "n": ' + b"9" * 5000 + b"}", None),  # a number over Python's int-string limit
    (b'{"id": "\\ud800", "text": "lone surrogate in the id"}', "invalid_unicode:id"),
    (b'{"id": "u", "text": "bad url", "url": "http://\\udfff.example"}', "invalid_unicode:url"),
    (b'{"id": "l", "text": "bad licence", "license": "\\ud83d"}', "invalid_unicode:license"),
    (b'{"id": "s", "text": "half a pair \\udc00 here"}', "invalid_unicode:text"),
    (b"[" * 100_000 + b"]" * 100_000, "broken_json:too_deep"),
    (b'{"id": 1, "text": "unterminated', "broken_json"),
    (b'{"id": true, "text": "boolean id"}', "wrong_type:id"),
])
def test_a_bad_record_is_rejected_and_the_file_read_on(tmp_path, bad, reason):
    p = tmp_path / "f.jsonl"
    p.write_bytes(b"\n".join([_rec(id=1, text="one"), bad, _rec(id=3, text="three"), _rec(id=4, text="four")]) + b"\n")
    docs, rejects = _read(p)
    kept = {d["native_id"] for d in docs}
    assert {"1", "3", "4"} <= kept
    if reason is None:  # the long number is not the text: the record itself is fine
        assert "x" in kept and rejects == []
    else:
        assert [r["reject_reason"] for r in rejects] == [reason] and rejects[0]["record"] == 2
    assert len(docs) + len(rejects) == 4


def test_a_line_over_the_cap_is_skipped_to_its_end(tmp_path):
    p = tmp_path / "long.jsonl"
    p.write_bytes(_rec(id=1, text="ok") + b"\n" + _rec(id=2, text="y" * 500_000) + b"\n" + _rec(id=3, text="ok") + b"\n")
    docs, rejects = _read(p, max_line_bytes=4096)
    assert [d["native_id"] for d in docs] == ["1", "3"]
    assert [(r["reject_reason"], r["record"]) for r in rejects] == [("line_too_long", 2)]


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_a_decompression_bomb_keeps_what_came_before_and_stops(tmp_path, suffix):
    good = b"".join(_rec(id=i, text=f"doc {i}") + b"\n" for i in range(20))
    if suffix == ".gz":
        co = zlib.compressobj(9, zlib.DEFLATED, 31)
        blob = co.compress(good) + b"".join(co.compress(b" " * (1 << 20)) for _ in range(64)) + co.flush()
    else:
        blob = zstandard.ZstdCompressor(level=19).compress(good + b" " * (64 << 20))
    p = tmp_path / f"bomb.jsonl{suffix}"
    p.write_bytes(blob)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    docs, rejects = _read(p, bomb_floor_bytes=1 << 20, max_inflate_ratio=100)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    reasons = [r["reject_reason"] for r in rejects]  # the megabyte line of spaces first, then the bomb
    assert len(docs) == 20 and reasons[-1] == "decompression_bomb" and set(reasons) <= {"line_too_long",
                                                                                         "decompression_bomb"}
    assert grown_mb < 48, grown_mb  # the 64 MiB of spaces were never held


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_records_before_a_truncation_are_kept(tmp_path, suffix):
    body = b"".join(_rec(id=i, text=f"document {i} " * 20) + b"\n" for i in range(2000))
    blob = gzip.compress(body) if suffix == ".gz" else zstandard.ZstdCompressor().compress(body)
    p = tmp_path / f"cut.jsonl{suffix}"
    p.write_bytes(blob[: len(blob) // 2])
    docs, rejects = _read(p)
    ids = [int(d["native_id"]) for d in docs]
    assert ids == list(range(len(ids))) and 0 < len(ids) < 2000  # a prefix, in order, nothing skipped
    assert [r["reject_reason"] for r in rejects] == ["truncated_file"]


def test_parquet_is_read_by_row_group_and_an_oversized_group_rejected_unread(tmp_path):
    table = pa.table({"id": [f"r{i}" for i in range(300)],
                      "text": [(f"{i:05d}" * 10_000 if 100 <= i < 200 else f"t{i}") for i in range(300)]})
    p = tmp_path / "f.parquet"
    pq.write_table(table, p, row_group_size=100)
    docs, rejects = _read(p, fmt="parquet", max_doc_bytes=100_000, max_row_group_bytes=1_000_000)
    assert len(docs) == 200 and {d["native_id"] for d in docs} == {f"r{i}" for i in (*range(100), *range(200, 300))}
    assert len(rejects) == 100 and {r["reject_reason"] for r in rejects} == {"row_group_too_large"}


def test_documents_are_handed_out_in_bounded_chunks(tmp_path):
    p = tmp_path / "many.jsonl"
    p.write_bytes(b"".join(_rec(id=i, text=f"doc {i}") + b"\n" for i in range(2500)))
    sizes = [len(d) for d, _ in stream_file(str(p), SRC, Limits(max_doc_bytes=1000), 1000)]
    assert sizes == [1000, 1000, 500]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    st.binary(max_size=120),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                 max_leaves=12).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"id": st.one_of(st.text(max_size=10), st.integers(), st.none()),
                           "text": st.text(alphabet=st.characters(), max_size=60),
                           "url": st.one_of(st.none(), st.text(max_size=20))},
                          ).map(lambda d: json.dumps(d).encode()),
    st.sampled_from([b'{"text": "\\ud800"}', b'{"id": 1e999, "text": "inf id"}', b"[" * 5000,
                     b'{"text": "' + b"9" * 6000 + b'"}', b'{"id": ' + b"1" * 5000 + b', "text": "n"}', b"\xef\xbb\xbf",
                     b'{"text": "a\\u0000b"}', b"\r"])), max_size=25),
    st.sampled_from(["", ".gz", ".zst"]))
def test_fuzzed_files_never_crash_and_every_record_is_accounted_for(tmp_path, records, suffix):
    records = [r.replace(b"\n", b" ") for r in records]
    body = b"\n".join(records) + b"\n"
    blob = {"": body, ".gz": gzip.compress(body), ".zst": zstandard.ZstdCompressor().compress(body)}[suffix]
    p = tmp_path / f"fuzz.jsonl{suffix}"
    p.write_bytes(blob)
    docs, rejects = read_file(str(p), SRC, 200)
    expected = sum(1 for i, r in enumerate(records) if (r[3:] if i == 0 and r.startswith(b"\xef\xbb\xbf") else r).strip())
    assert len(docs) + len(rejects) == expected
    assert rejects.empty or rejects["reject_reason"].notna().all()
    assert docs.empty or all(isinstance(t, str) and t.strip() and t.encode("utf-8") for t in docs["text"])
