from tasks.core.storage import StageDir, read_json, resolve_data_uri


def test_stage_dir_marker_written_last_and_partial_attempts_removed(tmp_path):
    sd = StageDir(str(tmp_path), "curate", "abc")
    sd.begin()
    (tmp_path / "curate" / "abc" / "half.parquet").write_text("partial")
    assert not sd.is_done()
    sd.begin()  # a re-run clears the half-written attempt
    assert not (tmp_path / "curate" / "abc" / "half.parquet").exists()
    out = sd.commit({"counts": {"in": 1}}, {"code": "c0de"})
    marker = read_json(sd.path("_SUCCESS"))
    assert sd.is_done() and marker["result"]["counts"] == {"in": 1} and out["hash"] == "abc"
    assert marker["key"] == {"code": "c0de"} and sd.marker() == marker


def test_results_hold_output_root_relative_paths(tmp_path):
    sd = StageDir(str(tmp_path), "tokenize", "h1")
    assert sd.rel("datasets", "a_train") == "tokenize/h1/datasets/a_train"
    assert sd.at("curate/h0/data") == str(tmp_path / "curate" / "h0" / "data")
    for bad in ("/etc/passwd", "../x", "curate/../../x", "s3://b/k", ""):
        try:
            sd.at(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")
    remote = StageDir("s3://bucket/runs", "pretrain", "h2")
    assert remote.at("tokenize/h1/x") == "s3://bucket/runs/tokenize/h1/x"
    assert remote.local().endswith("/.keel/scratch/bucket/runs/pretrain/h2")


def test_relative_data_uris_resolve_under_the_root(tmp_path):
    assert resolve_data_uri("a/b", str(tmp_path)) == str(tmp_path / "a" / "b")
    assert resolve_data_uri("s3://bucket/prefix", str(tmp_path)) == "s3://bucket/prefix"


def test_absolute_data_uris_only_inside_the_root_or_a_named_extra_root(tmp_path):
    import pytest

    root, docs, other = tmp_path / "corpus", tmp_path / "pkg" / "doc", tmp_path / "elsewhere"
    for d in (root, docs, other):
        d.mkdir(parents=True)
    (root / "escape").symlink_to(other)
    assert resolve_data_uri(str(docs), str(root), (str(tmp_path / "pkg"),)) == str(docs)
    assert resolve_data_uri(str(root / "a"), str(root), (str(tmp_path / "pkg"),)) == str(root / "a")
    for uri, extra in ((str(docs), ()), (str(other), (str(tmp_path / "pkg"),)), ("escape/x", (str(other),)),
                       ("../pkg/doc", (str(tmp_path / "pkg"),)), (str(tmp_path / "pkg" / ".." / "elsewhere"),
                                                                   (str(tmp_path / "pkg"),))):
        with pytest.raises(ValueError, match="outside the data root"):
            resolve_data_uri(uri, str(root), extra)


def test_scrub_masks_secret_keys_and_uri_credentials_only():
    from tasks.track.tracking import flatten

    flat = flatten({"s3": {"aws_secret_access_key": "AKIASECRET", "endpoint": "http://u:p4ss@host/x"},
                    "hf_token": "hf_abc", "stage_hash": {"tokenize": "abc"}, "tokenizer_path": "t.json"})
    assert flat["s3.aws_secret_access_key"] == "***" and flat["hf_token"] == "***"
    assert flat["s3.endpoint"] == "http://u:***@host/x"
    assert flat["stage_hash.tokenize"] == "abc" and flat["tokenizer_path"] == "t.json"
