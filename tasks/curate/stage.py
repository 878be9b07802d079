"""Curate stage on Dask: partition-local rules, then global dedup, with every removed document kept as a reject.

Phase 1 (one Dask task per ingest partition): run the rules of `[curate].steps` in order, writing each step's
rejects to `rejects/<NN>_<step>/` and the survivors, with their dedup keys, to `_work/`. Phase 2 (driver): gather
the small (doc_id, dedup key, band keys) table and choose survivors (tasks/curate/dedup.py). Phase 3 (one Dask
task per partition): write kept rows to `data/` and duplicates to their rejects folders. Conservation
`in == kept + rejected` is asserted per step and for the stage.
"""
from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tasks.core.cachekey import file_hashes
from tasks.core.cluster import list_parts, part_sizes, read_parquet, write_parquet
from tasks.core.stage import Counts, Runtime, StageDef
from tasks.core.storage import StageDir, join, remove_tree, write_bytes_atomic
from tasks.curate.config import CurateConfig
from tasks.curate.dedup import band_columns, choose_drops, dedup_key
from tasks.curate.minhash import band_keys, signatures
from tasks.curate.registry import GLOBAL_STEPS, RULES
from tasks.curate.report import funnel_chart
from tasks.govern.legal import DocumentPolicy
from tasks.ingest.stage import IngestResult


@dataclass(frozen=True)
class CurateInputs:
    ingested: IngestResult
    policy: DocumentPolicy
    """Document-level legal rules from the legal stage (config of the `legal_policy` rule)."""


@dataclass(frozen=True)
class StepStats:
    step: str
    received: int
    kept: int
    bytes_in: int
    rejected: dict[str, int]


@dataclass(frozen=True)
class CurateResult:
    data: str
    """Output-root-relative folder of curated partitions."""
    counts: Counts
    funnel: tuple[StepStats, ...]
    rejected_by_reason: dict[str, int]
    partitions: int
    funnel_chart: str
    """Output-root-relative path of curation_funnel.png."""
    steps: tuple[str, ...]
    """The rules every kept document passed, in order (the ledger records them)."""


def _step_dir(stage_uri: str, step: str, steps: tuple[str, ...]) -> str:
    number = (list(steps) + list(GLOBAL_STEPS)).index(step) + 1
    return join(stage_uri, "rejects", f"{number:02d}_{step}")


def _stat(step: str, before: pd.DataFrame, reasons: pd.Series) -> dict:
    return {"step": step, "in": len(before), "kept": int(reasons.isna().sum()),
            "bytes_in": int(before["text"].str.len().sum()) if len(before) else 0,
            "rejected": dict(Counter(reasons.dropna()))}


def _rule_config(cfg: CurateConfig, policy: DocumentPolicy, source: str):
    return policy if source == "policy" else getattr(cfg, source)


def _local(part_uri: str, name: str, stage_uri: str, cfg: CurateConfig, policy: DocumentPolicy) -> list[dict]:
    df = read_parquet(part_uri)
    stats = []
    for step in cfg.steps:
        rule, source = RULES[step]
        res = rule(df, _rule_config(cfg, policy, source))
        out = res.frame.assign(**res.signals)
        reasons = pd.Series(res.reasons, index=out.index)
        stats.append(_stat(step, df, reasons))
        dropped = out[~res.keep]
        if len(dropped):
            write_parquet(dropped.assign(reject_step=step, reject_reason=reasons[~res.keep].astype(str)),
                          join(_step_dir(stage_uri, step, cfg.steps), f"{name}.parquet"))
        df = out[res.keep].reset_index(drop=True)
    df = df.assign(dedup_key=[dedup_key(t) for t in df["text"]])
    d = cfg.dedup
    if d.near:
        keys = band_keys(signatures(df["text"].tolist(), d.ngram, d.bands * d.rows), d.bands, d.rows)
        df = df.assign(**{c: keys[:, i] for i, c in enumerate(band_columns(d))})
    write_parquet(df, join(stage_uri, "_work", f"{name}.parquet"))
    return stats


def _keys(work_uri: str, bands: list[str]) -> pd.DataFrame:
    return read_parquet(work_uri, columns=["doc_id", "dedup_key", *bands])


def _finalize(work_uri: str, name: str, drops: dict, stage_uri: str, cfg: CurateConfig) -> list[dict]:
    df = read_parquet(work_uri)
    stats = []
    for step in GLOBAL_STEPS:
        reasons = pd.Series([None] * len(df), index=df.index, dtype=object)
        dup_of = pd.Series([None] * len(df), index=df.index, dtype=object)
        for row, (s, reason, of) in drops.items():
            if s == step and row in df.index:
                reasons[row], dup_of[row] = reason, of
        stats.append(_stat(step, df, reasons))
        mask = reasons.notna()
        if mask.any():
            write_parquet(df[mask].assign(duplicate_of=dup_of[mask], reject_step=step, reject_reason=reasons[mask]),
                          join(_step_dir(stage_uri, step, cfg.steps), f"{name}.parquet"))
        df = df[~mask]
    df = df.drop(columns=["dedup_key", *band_columns(cfg.dedup)])
    write_parquet(df.reset_index(drop=True), join(stage_uri, "data", f"{name}.parquet"))
    return stats


def _merge(stats_lists: list[list[dict]]) -> list[StepStats]:
    merged: dict[str, dict] = {}
    for stats in stats_lists:
        for s in stats:
            m = merged.setdefault(s["step"], {"in": 0, "kept": 0, "bytes_in": 0, "rejected": Counter()})
            m["in"] += s["in"]
            m["kept"] += s["kept"]
            m["bytes_in"] += s["bytes_in"]
            m["rejected"].update(s["rejected"])
    return [StepStats(step, m["in"], m["kept"], m["bytes_in"], dict(m["rejected"])) for step, m in merged.items()]


def check_funnel(funnel: list[StepStats]) -> None:
    """Conservation per step, and each step consumes exactly what the previous one kept."""
    prev_kept = None
    for s in funnel:
        assert s.received == s.kept + sum(s.rejected.values()), f"conservation violated in {s.step}"
        assert prev_kept is None or s.received == prev_kept, f"rows lost between steps before {s.step}"
        prev_kept = s.kept


def run(cfg: CurateConfig, inputs: CurateInputs, out: StageDir, rt: Runtime) -> CurateResult:
    parts = list_parts(out.at(inputs.ingested.docs))
    names = [f"part-{i:05d}" for i in range(len(parts))]
    local_stats = rt.cluster.map(_local, parts, names, stage_uri=out.uri, cfg=cfg, policy=inputs.policy,
                                 progress="curate: rules", cost=part_sizes(parts))
    works = [out.path("_work", f"{n}.parquet") for n in names]
    drops = choose_drops(rt.cluster.map(_keys, works, bands=band_columns(cfg.dedup)), cfg.dedup)
    global_stats = rt.cluster.map(_finalize, works, names, drops, stage_uri=out.uri, cfg=cfg, progress="curate: dedup")
    funnel = _merge(local_stats) + _merge(global_stats)
    check_funnel(funnel)
    remove_tree(out.path("_work"))
    total_in = funnel[0].received if funnel else 0
    kept = funnel[-1].kept if funnel else 0
    if total_in != inputs.ingested.counts.kept:
        raise AssertionError(f"curate read {total_in} documents, ingest kept {inputs.ingested.counts.kept}")
    by_reason = sum((Counter(s.rejected) for s in funnel), Counter())
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(funnel_chart(funnel, f"{tmp}/curation_funnel.png"))
        write_bytes_atomic(out.path(chart.name), chart.read_bytes())
    return CurateResult(data=out.rel("data"), counts=Counts(total_in, kept, total_in - kept), funnel=tuple(funnel),
                        rejected_by_reason=dict(by_reason), partitions=len(parts), funnel_chart=out.rel(chart.name),
                        steps=tuple(cfg.steps))


def reads(cfg: CurateConfig, inputs: CurateInputs) -> list:
    """The HAP word list, and the UT1 blocklist archive when the policy uses it."""
    from tasks.curate.rules.legal_policy import ut1_archive

    files = [cfg.hap.words_path] if "hap" in cfg.steps else []
    if inputs.policy.ut1_blocklist and "legal_policy" in cfg.steps and ut1_archive():
        files.append(str(ut1_archive()))
    return file_hashes(files)


STAGE = StageDef(name="curate", run=run, result=CurateResult, reads=reads)
