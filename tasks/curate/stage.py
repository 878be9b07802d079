"""Curate stage on Dask: partition-local rules, then global dedup, with every removed document kept as a reject.

Phase 1 (one Dask task per ingest partition): run the rules of `[curate].steps` in order, writing each step's
rejects to `rejects/<NN>_<step>/` and the survivors, with their dedup keys, to `_work/`. Phase 2 (shuffles on the
cluster, tasks/curate/dedup.py): duplicate ids, exact and near duplicates, their losers written per partition; the
driver sees counts only. Phase 3 (one Dask task per partition): write kept rows to `data/` and duplicates to their
rejects folders. Conservation
`in == kept + rejected` is asserted per step and for the stage.
"""
from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.cachekey import file_hashes
from tasks.core.cluster import list_parts, part_sizes, read_parquet, write_parquet
from tasks.core.isolate import ChildDied, TimedOut, in_child, time_limit
from tasks.core.stage import Counts, Runtime, StageDef
from tasks.core.storage import StageDir, join, remove_tree, write_bytes_atomic
from tasks.curate.config import CurateConfig
from tasks.curate.dedup import Plan, band_columns, dedup_key, partition_drops, plan, run_dedup
from tasks.curate.minhash import band_keys, signatures
from tasks.curate.registry import GLOBAL_STEPS, RULES
from tasks.curate.report import funnel_chart
from tasks.curate.step import StepResult
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


BATCH_ALLOWANCE_S = 0.05
"""Time per document a whole batch may take before it is re-run document by document (within the budget each)."""


def _step_dir(stage_uri: str, step: str, steps: tuple[str, ...]) -> str:
    number = (list(steps) + list(GLOBAL_STEPS)).index(step) + 1
    return join(stage_uri, "rejects", f"{number:02d}_{step}")


def _stat(step: str, before: pd.DataFrame, reasons: pd.Series) -> dict:
    return {"step": step, "in": len(before), "kept": int(reasons.isna().sum()),
            "bytes_in": int(before["text"].str.len().sum()) if len(before) else 0,
            "rejected": dict(Counter(reasons.dropna()))}


def _rule_config(cfg: CurateConfig, policy: DocumentPolicy, source: str):
    return policy if source == "policy" else getattr(cfg, source)


def _run_rule(rule, df: pd.DataFrame, rule_cfg, step: str, budget_s: float) -> StepResult:
    """The rule over the batch, within `budget_s` per document (checked for the batch as a whole first); when the
    batch overruns, document by document, and a document that alone overruns is rejected `rule_timeout:<step>`."""
    if budget_s <= 0:
        return rule(df, rule_cfg)
    try:
        with time_limit(budget_s + BATCH_ALLOWANCE_S * len(df)):
            return rule(df, rule_cfg)
    except TimedOut:
        pass
    frames, keep, reasons = [], [], []
    for i in range(len(df)):
        one = df.iloc[[i]].reset_index(drop=True)
        try:
            with time_limit(budget_s):
                res = rule(one, rule_cfg)
            frames.append(res.frame.assign(**res.signals))
            keep.append(bool(res.keep[0]))
            reasons.append(res.reasons[0])
        except TimedOut:
            frames.append(one)
            keep.append(False)
            reasons.append(f"rule_timeout:{step}")
    frame = pd.concat(frames, ignore_index=True) if frames else df
    return StepResult(frame, np.array(keep, dtype=bool), np.array(reasons, dtype=object), {})


def without_optout_text(rejects: pd.DataFrame) -> pd.DataFrame:
    """Rejects of opted-out documents keep their ids, hashes and reason, not their text (nor URL)."""
    gone = rejects["reject_reason"].str.startswith("optout_")
    if not gone.any():
        return rejects
    rejects = rejects.copy()
    rejects.loc[gone, "text"] = ""
    if "url" in rejects.columns:
        rejects.loc[gone, "url"] = ""
    return rejects


SUB_BATCH = 512
"""Documents taken through the whole chain of rules at a time: the rules of a sub-batch meet the same texts, so a
document's words are split once for all of them (tasks/curate/text.py `doc_words`), in bounded memory."""


def _apply_rules(df: pd.DataFrame, cfg: CurateConfig, policy: DocumentPolicy):
    """The partition-local rules, a sub-batch at a time, and the dedup keys: pure computation (run in a child
    process)."""
    stats: list[dict] = []
    dropped: dict[str, list[pd.DataFrame]] = {}
    kept = []
    for i in range(0, max(len(df), 1), SUB_BATCH):
        part_stats, part_dropped, survivors = _apply_chain(df.iloc[i:i + SUB_BATCH].reset_index(drop=True), cfg, policy)
        stats = part_stats if not stats else [_add(a, b) for a, b in zip(stats, part_stats)]
        for step, frame in part_dropped:
            dropped.setdefault(step, []).append(frame)
        kept.append(survivors)
    kept = [k for k in kept if len(k)] or kept[:1]  # an emptied sub-batch may lack a rule's signal columns
    df = pd.concat(kept, ignore_index=True) if len(kept) > 1 else kept[0]
    df = df.assign(dedup_key=[dedup_key(t) for t in df["text"]])
    d = cfg.dedup
    if d.near:
        keys = band_keys(signatures(df["text"].tolist(), d.ngram, d.bands * d.rows), d.bands, d.rows)
        df = df.assign(**{c: keys[:, i] for i, c in enumerate(band_columns(d))})
    return stats, [(step, pd.concat(frames, ignore_index=True)) for step, frames in dropped.items()], df


def _add(a: dict, b: dict) -> dict:
    return {"step": a["step"], "in": a["in"] + b["in"], "kept": a["kept"] + b["kept"],
            "bytes_in": a["bytes_in"] + b["bytes_in"], "rejected": dict(Counter(a["rejected"]) + Counter(b["rejected"]))}


def _apply_chain(df: pd.DataFrame, cfg: CurateConfig, policy: DocumentPolicy):
    """The rules of `[curate].steps` in order over one sub-batch: per-step stats, rejects, survivors."""
    stats, dropped = [], []
    for step in cfg.steps:
        rule, source = RULES[step]
        res = _run_rule(rule, df, _rule_config(cfg, policy, source), step, cfg.doc_time_budget_s)
        out = res.frame.assign(**res.signals)
        reasons = pd.Series(res.reasons, index=out.index)
        stats.append(_stat(step, df, reasons))
        if (~res.keep).any():
            gone = out[~res.keep].assign(reject_step=step, reject_reason=reasons[~res.keep].astype(str))
            dropped.append((step, without_optout_text(gone)))
        df = out[res.keep].reset_index(drop=True)
    return stats, dropped, df


def _quarantine_stat(rows: int, bytes_in: int, reason: str | None) -> dict:
    return {"step": "quarantine", "in": rows, "kept": 0 if reason else rows, "bytes_in": bytes_in,
            "rejected": {reason: rows} if reason else {}}


def _quarantine(df: pd.DataFrame, name: str, stage_uri: str, cfg: CurateConfig, why: str) -> list[dict]:
    """Set a partition aside: its rows to rejects/00_quarantine (`worker_killed`), an empty work file, stats."""
    size = int(df["text"].str.len().sum()) if len(df) else 0
    write_parquet(df.assign(reject_step="quarantine", reject_reason=f"worker_killed: {why}"),
                  join(stage_uri, "rejects", "00_quarantine", f"{name}.parquet"))
    empty = df.iloc[:0].assign(dedup_key=pd.Series([], dtype=object),
                               **{c: np.array([], dtype=np.uint64) for c in band_columns(cfg.dedup)})
    write_parquet(empty, join(stage_uri, "_work", f"{name}.parquet"))
    return [_quarantine_stat(len(df), size, "worker_killed"),
            *(_stat(s, df.iloc[:0], pd.Series([], dtype=object)) for s in cfg.steps)]


@lru_cache(maxsize=8)
def warm_up(steps: tuple[str, ...], words_path: str, ut1: bool = False) -> None:
    """Load, once per worker and before any time budget, what the rules load on first use: spaCy's tokenizer rules
    (read into tasks/curate/affixes.py's searches), the language-id models, the HAP classifier and word list, the
    UT1 domain blocklist (4 s to read: it used to time out whichever document came first, in every partition). An
    import cut short by a document's time budget leaves a module half-registered in the process, and every later
    import of it fails; and forked children inherit what is loaded here instead of loading it per partition."""
    from tasks.curate import text
    from tasks.curate.rules import hap, hap_learned, hap_model, language, legal_policy

    if {"gopher_quality", "gopher_repetition", "fineweb_quality", "c4_quality"} & set(steps):
        text._spacy()
        text._sentence_ends()
    if "language" in steps:
        language._screen("warm up")
        if language._lingua_language("en") is not None:
            language._confirmer().compute_language_confidence("warm up the models", language._lingua_language("en"))
    if "hap" in steps:
        hap_model.model()
        hap._lists(words_path)
        hap_learned.model()  # trained from data_contracts/hap/train.jsonl (about a second)
    if "legal_policy" in steps and ut1:
        legal_policy._ut1_hashes()


def _local(part_uri: str, name: str, stage_uri: str, cfg: CurateConfig, policy: DocumentPolicy) -> list[dict]:
    """Read one partition, run the rules on it in a child process (twice at most: a partition that kills its
    child twice is quarantined, `worker_killed`), write its rejects and survivors."""
    warm_up(tuple(cfg.steps), cfg.hap.words_path, policy.ut1_blocklist)
    df = read_parquet(part_uri)
    size = int(df["text"].str.len().sum()) if len(df) else 0
    died = None
    for _ in range(2 if cfg.isolate else 0):
        try:
            stats, dropped, work = in_child(_apply_rules, df, cfg, policy)
            break
        except ChildDied as exc:
            died = str(exc)
    else:
        if cfg.isolate:
            return _quarantine(df, name, stage_uri, cfg, died or "")
        stats, dropped, work = _apply_rules(df, cfg, policy)
    for step, frame in dropped:
        write_parquet(frame, join(_step_dir(stage_uri, step, cfg.steps), f"{name}.parquet"))
    write_parquet(work, join(stage_uri, "_work", f"{name}.parquet"))
    return [_quarantine_stat(len(df), size, None), *stats]


def _finalize(work_uri: str, part: int, name: str, dedup: Plan, stage_uri: str, cfg: CurateConfig) -> list[dict]:
    df = read_parquet(work_uri)
    drops = partition_drops(dedup, part)
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
    def quarantine(i: int, error: BaseException) -> list[dict]:  # the partition killed its Dask worker twice
        return _quarantine(read_parquet(parts[i]), names[i], out.uri, cfg, f"{type(error).__name__}: {error}")

    local_stats = rt.cluster.map(_local, parts, names, stage_uri=out.uri, cfg=cfg, policy=inputs.policy,
                                 progress="curate: rules", cost=part_sizes(parts), quarantine=quarantine)
    works = [out.path("_work", f"{n}.parquet") for n in names]
    local = _merge(local_stats)
    dedup = plan(out.uri, len(works), cfg.dedup, rows=local[-1].kept if local else 0)
    run_dedup(rt.cluster, dedup, works, rt.log)
    global_stats = rt.cluster.map(_finalize, works, range(len(works)), names, dedup=dedup, stage_uri=out.uri,
                                  cfg=cfg, progress="curate: dedup")
    funnel = local + _merge(global_stats)
    check_funnel(funnel)
    remove_tree(out.path("_work"))
    remove_tree(dedup.root)
    total_in = funnel[0].received if funnel else 0
    kept = funnel[-1].kept if funnel else 0
    quarantined = sum(funnel[0].rejected.values()) if funnel else 0
    if total_in and quarantined / total_in > cfg.max_quarantined_share:
        raise ValueError(f"curate: {quarantined} of {total_in} documents were quarantined (partitions that killed "
                         f"their process twice), over [curate].max_quarantined_share = {cfg.max_quarantined_share}; "
                         f"see {out.path('rejects', '00_quarantine')}")
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
    """The HAP word list and training set, and the UT1 blocklist archive when the policy uses it."""
    from tasks.curate.rules.legal_policy import ut1_archive

    from tasks.curate.rules.hap_learned import TRAIN

    files = [cfg.hap.words_path, str(TRAIN)] if "hap" in cfg.steps else []
    if inputs.policy.ut1_blocklist and "legal_policy" in cfg.steps and ut1_archive():
        files.append(str(ut1_archive()))
    return file_hashes(files)


STAGE = StageDef(name="curate", run=run, result=CurateResult, reads=reads)
