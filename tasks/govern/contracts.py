"""Contract stages: Great Expectations suites (JSON under data_contracts/expectations/) at each stage boundary.

A contract validates either a folder of Parquet partitions (raw, curated: each partition on a Dask worker, one
ephemeral GX context per worker process, since GX has no Dask support; global properties such as uniqueness and
row counts checked once on the aggregate) or a small table on the driver (tokenized datasets, realized mix).
Suites may reference `$name` substitutions (e.g. `$allowed_licenses` from the legal stage) so thresholds stay in
data_contracts/. Every contract writes report.md; a failing one raises ContractError carrying the report, which
stops everything downstream (the one place where a failed contract becomes an error).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.core.cachekey import file_hashes
from tasks.core.cluster import Cluster, list_parts, read_parquet
from tasks.core.stage import Counts, Runtime, StageDef
from tasks.core.shuffle import gather, scatter, shard_of
from tasks.core.storage import StageDir, join, remove_tree, write_text
from tasks.core.typed import load

_BATCH = None  # per worker process: GX batch definition over an in-memory frame


@dataclass(frozen=True)
class ContractsConfig:
    expectations: str = "data_contracts/expectations"
    """Folder of Great Expectations suites (raw.json, curated.json, tokenized.json, mix.json)."""

    def check(self) -> list[str]:
        missing = [n for n in ("raw", "curated", "tokenized", "mix") if not (Path(self.expectations) / f"{n}.json").is_file()]
        return [f"[contracts].expectations: {self.expectations} lacks {', '.join(m + '.json' for m in missing)}"] if missing else []


@dataclass(frozen=True)
class ContractCheck:
    suite: str
    """Suite name: <expectations>/<suite>.json."""
    expectations: str
    """[contracts].expectations."""
    substitutions: dict[str, Any]
    """Values for the suite's `$name` placeholders."""
    warn_only: tuple[str, ...] = ()
    """Expectations (by type) that are reported but do not block, e.g. 'global:unique' on raw data."""

    @property
    def suite_path(self) -> str:
        return str(Path(self.expectations) / f"{self.suite}.json")


@dataclass(frozen=True)
class ContractInputs:
    folder: str = ""
    """Output-root-relative folder of Parquet partitions (validated on the workers), or ''."""
    rows: tuple[dict[str, Any], ...] = ()
    """A small table validated on the driver (when there is no folder)."""


@dataclass(frozen=True)
class ExpectationResult:
    expectation: str
    kwargs: dict[str, Any]
    success: bool
    unexpected_count: int
    sample: tuple[str, ...]


@dataclass(frozen=True)
class ContractReport:
    suite: str
    success: bool
    rows: int
    partitions: int
    results: tuple[ExpectationResult, ...]

    def failures(self, warn_only: tuple[str, ...] = ()) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success and r.expectation not in warn_only]


@dataclass(frozen=True)
class ContractResult:
    report: ContractReport
    warnings: tuple[ExpectationResult, ...]
    """Failed expectations that do not block."""
    report_md: str
    """Output-root-relative path of report.md."""
    counts: Counts | None
    """Documents checked (a contract over document partitions); None for a table of datasets or domains."""

    @property
    def passed(self) -> bool:
        """Every expectation passed, or failed only as a warning."""
        return all(r.success or r in self.warnings for r in self.report.results)


class ContractError(RuntimeError):
    """A data contract failed; the message names the suite and the failing expectations."""

    def __init__(self, report: ContractReport, markdown: str):
        self.report, self.markdown = report, markdown
        super().__init__(f"data contract {report.suite!r} failed; downstream stages stopped.\n{markdown}")


def load_suite_json(path: str | Path, substitutions: dict) -> dict:
    suite = json.loads(Path(path).read_text())
    for exp in suite["expectations"]:
        for k, v in list(exp["kwargs"].items()):
            if isinstance(v, str) and v.startswith("$"):
                if v not in substitutions:
                    raise ValueError(f"suite {path}: unknown substitution {v}; known: {sorted(substitutions)}")
                exp["kwargs"][k] = substitutions[v]
    return suite


def _batch_definition():
    global _BATCH
    if _BATCH is None:
        import logging

        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = ctx.data_sources.add_pandas("keel").add_dataframe_asset("partition")
        _BATCH = asset.add_batch_definition_whole_dataframe("whole")
    return _BATCH


CONTENT_COLUMNS = ("text", "url")
"""Columns whose values are documents' content: a report names them by hash, never by value (reports reach MLflow
and Prefect, where `keel forget --purge` cannot reach, and a failed PII expectation's value is the PII)."""


def _shown(column, value) -> str:
    if column in CONTENT_COLUMNS:
        return "sha256:" + hashlib.sha256(str(value).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return str(value)[:200]


def validate_frame(df: pd.DataFrame, suite_json: dict) -> dict:
    """Validate one frame; returns {success, rows, results:[{expectation, success, unexpected_count, sample}]}."""
    import great_expectations as gx

    spec = {k: v for k, v in suite_json.items() if k in ("name", "expectations", "meta", "notes")}
    suite = gx.ExpectationSuite(**spec)
    res = _batch_definition().get_batch(batch_parameters={"dataframe": df}).validate(suite)
    results = []
    for r in res.results:
        cfg = r.expectation_config
        kwargs = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
        if isinstance(kwargs.get("value_set"), list) and len(kwargs["value_set"]) > 8:
            kwargs["value_set"] = kwargs["value_set"][:8] + ["..."]
        sample = [_shown(kwargs.get("column"), x) for x in (r.result.get("partial_unexpected_list") or [])[:5]]
        results.append({"expectation": cfg.type, "kwargs": kwargs, "success": bool(r.success),
                        "unexpected_count": int(r.result.get("unexpected_count") or 0), "sample": sample})
    return {"success": bool(res.success), "rows": len(df), "results": results}


def _validate_part(uri: str, index: int, suite_json: dict, unique_cols: list[str], shuffle_uri: str,
                   shards: int) -> dict:
    """One partition's expectations; the values of `unique_cols` scattered by hash for the global check."""
    df = read_parquet(uri)
    out = validate_frame(df, suite_json)
    out["part"] = uri
    for c in unique_cols:
        if c in df.columns:
            values = df[[c]].rename(columns={c: "value"}).astype({"value": str})
            scatter(values, shard_of(values["value"], shards), join(shuffle_uri, c), f"p{index:05d}")
    return out


def _duplicates(shard: int, shuffle_uri: str, column: str) -> tuple[int, list[str]]:
    """Repeated values of one column in one hash shard: how many rows repeat an earlier one, up to five of them."""
    values = gather(join(shuffle_uri, column, f"s{shard:05d}"), {"value": "object"})["value"]
    dups = values[values.duplicated()]
    return int(len(dups)), [str(x) for x in dups.head(5)]


def validate_parts(parts: list[str], suite_json: dict, cluster: Cluster, shuffle_uri: str) -> ContractReport:
    """Each partition validated on a worker; global uniqueness checked shard by shard on the workers (the values
    shuffled by hash under `shuffle_uri`, removed after), so no process holds a whole column."""
    glob = suite_json.get("meta", {}).get("global", {})
    unique_cols = glob.get("unique", [])
    shards = max(1, len(parts))
    remove_tree(shuffle_uri)
    per_part = cluster.map(_validate_part, parts, range(len(parts)), suite_json=suite_json, unique_cols=unique_cols,
                           shuffle_uri=shuffle_uri, shards=shards)
    merged: dict[tuple, dict] = {}
    for p in per_part:
        for r in p["results"]:
            key = (r["expectation"], json.dumps(r["kwargs"], sort_keys=True, default=str))
            m = merged.setdefault(key, {**r, "unexpected_count": 0, "sample": [], "success": True})
            m["unexpected_count"] += r["unexpected_count"]
            m["success"] &= r["success"]
            m["sample"] = (m["sample"] + r["sample"])[:5]
    results = list(merged.values())
    rows = sum(p["rows"] for p in per_part)
    for col in unique_cols:
        found = cluster.map(_duplicates, range(shards), shuffle_uri=shuffle_uri, column=col)
        count, sample = sum(n for n, _ in found), [x for _, xs in found for x in xs][:5]
        results.append({"expectation": "global:unique", "kwargs": {"column": col}, "success": count == 0,
                        "unexpected_count": count, "sample": sample})
    remove_tree(shuffle_uri)
    if "min_rows" in glob:
        results.append({"expectation": "global:min_rows", "kwargs": {"min_rows": glob["min_rows"]},
                        "success": rows >= glob["min_rows"], "unexpected_count": 0, "sample": [str(rows)]})
    return _report(suite_json.get("name"), rows, len(parts), results)


def _report(suite: str, rows: int, partitions: int, results: list[dict]) -> ContractReport:
    typed = tuple(load(ExpectationResult, json.loads(json.dumps({**r, "sample": list(r["sample"])}, default=str)))
                  for r in results)
    return ContractReport(suite=suite, success=all(r.success for r in typed), rows=rows, partitions=partitions,
                          results=typed)


def report_markdown(report: ContractReport, warn_only: tuple[str, ...] = ()) -> str:
    failed = report.failures(warn_only)
    status = "PASSED" if not failed else "FAILED"
    warned = " (with warnings)" if not failed and not report.success else ""
    lines = [f"# Data contract `{report.suite}`: {status}{warned}", "",
             f"{report.rows} rows in {report.partitions} partitions.", "",
             "| expectation | arguments | result | unexpected | sample |", "|---|---|---|---|---|"]
    for r in report.results:
        args = json.dumps(r.kwargs, default=str).replace("|", "\\|")[:160]
        sample = ", ".join(s.replace("|", "\\|").replace("\n", " ")[:60] for s in r.sample[:3])
        verdict = "pass" if r.success else ("warn" if r.expectation in warn_only else "**FAIL**")
        lines.append(f"| {r.expectation} | `{args}` | {verdict} | {r.unexpected_count} | {sample} |")
    return "\n".join(lines) + "\n"


def validate_rows(rows: tuple[dict, ...], suite_json: dict) -> ContractReport:
    """Validate a small table on the driver."""
    res = validate_frame(pd.DataFrame(list(rows)), suite_json)
    return _report(suite_json.get("name"), res["rows"], 1, res["results"])


def run(cfg: ContractCheck, inputs: ContractInputs, out: StageDir, rt: Runtime) -> ContractResult:
    suite = load_suite_json(cfg.suite_path, cfg.substitutions)
    if inputs.folder:
        report = validate_parts(list_parts(out.at(inputs.folder)), suite, rt.cluster, out.path("_unique"))
    else:
        report = validate_rows(inputs.rows, suite)
    md = report_markdown(report, cfg.warn_only)
    write_text(out.path("report.md"), md)
    if report.failures(cfg.warn_only):
        raise ContractError(report, md)
    return ContractResult(report=report, warnings=tuple(r for r in report.results if not r.success),
                          report_md=out.rel("report.md"),
                          counts=Counts.passed(report.rows) if inputs.folder else None)


def reads(cfg: ContractCheck, inputs: ContractInputs) -> list:
    return file_hashes([cfg.suite_path])


STAGE = StageDef(name="contract", run=run, result=ContractResult, reads=reads)
