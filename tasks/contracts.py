"""Data contracts: Great Expectations suites (JSON under data_contracts/expectations/) validated on Dask.

GX has no Dask support, so each partition is validated on a worker (one ephemeral context per worker process)
and global properties (uniqueness, row count) are checked once on the aggregate. Suites may reference
`$name` substitutions (e.g. `$allowed_licenses` from the legal policy) so thresholds stay in data_contracts/.
A failing contract raises ContractError after writing a readable report.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tasks.cluster import Cluster, read_parquet

_BATCH = None  # per worker process: GX batch definition over an in-memory frame


class ContractError(RuntimeError):
    """A data contract failed; the message names the suite and the failing expectations."""


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
        sample = [str(x)[:200] for x in (r.result.get("partial_unexpected_list") or [])[:5]]
        results.append({"expectation": cfg.type, "kwargs": kwargs, "success": bool(r.success),
                        "unexpected_count": int(r.result.get("unexpected_count") or 0), "sample": sample})
    return {"success": bool(res.success), "rows": len(df), "results": results}


def _validate_part(uri: str, suite_json: dict, unique_cols: list[str]) -> dict:
    df = read_parquet(uri)
    out = validate_frame(df, suite_json)
    out["part"] = uri
    out["unique"] = {c: df[c].tolist() for c in unique_cols if c in df.columns}
    return out


def validate_parts(parts: list[str], suite_json: dict, cluster: Cluster) -> dict:
    glob = suite_json.get("meta", {}).get("global", {})
    unique_cols = glob.get("unique", [])
    per_part = cluster.map(_validate_part, parts, suite_json=suite_json, unique_cols=unique_cols)
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
        values = pd.Series([v for p in per_part for v in p["unique"].get(col, [])])
        dups = values[values.duplicated()]
        results.append({"expectation": "global:unique", "kwargs": {"column": col}, "success": dups.empty,
                        "unexpected_count": int(len(dups)), "sample": [str(x) for x in dups.head(5)]})
    if "min_rows" in glob:
        results.append({"expectation": "global:min_rows", "kwargs": {"min_rows": glob["min_rows"]},
                        "success": rows >= glob["min_rows"], "unexpected_count": 0, "sample": [str(rows)]})
    return {"suite": suite_json.get("name"), "success": all(r["success"] for r in results), "rows": rows,
            "partitions": len(parts), "results": results}


def report_markdown(report: dict) -> str:
    status = "PASSED" if report["success"] else "FAILED"
    lines = [f"# Data contract `{report['suite']}`: {status}", "",
             f"{report['rows']} rows in {report['partitions']} partitions.", "",
             "| expectation | arguments | result | unexpected | sample |", "|---|---|---|---|---|"]
    for r in report["results"]:
        args = json.dumps(r["kwargs"], default=str).replace("|", "\\|")[:160]
        sample = ", ".join(s.replace("|", "\\|").replace("\n", " ")[:60] for s in r["sample"][:3])
        lines.append(f"| {r['expectation']} | `{args}` | {'pass' if r['success'] else '**FAIL**'} | "
                     f"{r['unexpected_count']} | {sample} |")
    return "\n".join(lines) + "\n"
