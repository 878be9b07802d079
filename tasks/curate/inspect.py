"""`keel inspect`: a recipe's curation rules on a local JSONL sample, every document with every signal.

Unlike the curate stage, every rule runs on every document (a document rejected by an early rule still gets the
later rules' signals: its HAP score, PII counts, language), so a labelled sample can be scored whole. `kept`,
`reject_step` and `reject_reason` say what the pipeline would do: the first rule that rejects it. Text rewrites
(normalize, PII redaction) apply in order, as in the pipeline. The global steps (duplicate ids, exact and near
dedup) and `legal_policy` (it needs the sources' manifests) are not applied.

Input lines: a JSON object with `text` and an id (`id` or `doc_id`); a line that is not one is written back with
`reject_step = "read"` and the reason, never dropped.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from tasks.curate.config import CurateConfig
from tasks.curate.registry import RULES
from tasks.curate.stage import _rule_config, _run_rule, warm_up

SKIPPED = ("legal_policy",)
BATCH = 2000


def inspect_frame(df: pd.DataFrame, cfg: CurateConfig) -> pd.DataFrame:
    """Every step of `cfg.steps` (but SKIPPED) on every row; adds kept, reject_step, reject_reason and signals."""
    warm_up(tuple(cfg.steps), cfg.hap.words_path)
    n = len(df)
    step_of, reason_of = np.full(n, None, dtype=object), np.full(n, None, dtype=object)
    out = df.reset_index(drop=True)
    for step in cfg.steps:
        if step in SKIPPED:
            continue
        rule, source = RULES[step]
        res = _run_rule(rule, out, _rule_config(cfg, None, source), step, cfg.doc_time_budget_s)
        out = res.frame.assign(**res.signals).reset_index(drop=True)
        first = ~res.keep & (step_of == None)  # noqa: E711  (element-wise)
        step_of[first], reason_of[first] = step, res.reasons[first]
    return out.assign(kept=step_of == None, reject_step=step_of, reject_reason=reason_of)  # noqa: E711


def _records(path: Path) -> Iterator[dict]:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw.decode("utf-8"))
                if not isinstance(rec, dict):
                    raise ValueError("not a JSON object")
                text = rec.get("text")
                if not isinstance(text, str):
                    raise ValueError("no string `text`")
            except (UnicodeDecodeError, ValueError) as exc:
                yield {"id": f"line-{number}", "text": "", "_error": f"line {number}: {exc}"[:200]}
                continue
            rid = rec.get("id", rec.get("doc_id", f"line-{number}"))
            yield {"id": str(rid), "text": text}


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def inspect_file(cfg: CurateConfig, src: str | Path, dst: str | Path) -> dict:
    """Run `inspect_frame` over a JSONL file in batches; write one JSON line per input line. Returns counts."""
    counts = {"documents": 0, "kept": 0, "rejected": {}}
    batch: list[dict] = []
    with open(dst, "w", encoding="utf-8") as out:
        def flush():
            good = [r for r in batch if "_error" not in r]
            frame = inspect_frame(pd.DataFrame(good, columns=["id", "text"]).assign(doc_id=lambda d: d["id"]), cfg) \
                if good else pd.DataFrame()
            rows = iter(frame.drop(columns=["doc_id"]).to_dict("records")) if good else iter(())
            for r in batch:
                if "_error" in r:
                    rec = {"id": r["id"], "text": "", "kept": False, "reject_step": "read", "reject_reason": r["_error"]}
                else:
                    rec = {k: _plain(v) for k, v in next(rows).items()}
                counts["documents"] += 1
                if rec["kept"]:
                    counts["kept"] += 1
                else:
                    counts["rejected"][rec["reject_step"]] = counts["rejected"].get(rec["reject_step"], 0) + 1
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            batch.clear()

        for rec in _records(Path(src)):
            batch.append(rec)
            if len(batch) >= BATCH:
                flush()
        if batch:
            flush()
    counts["steps"] = [s for s in cfg.steps if s not in SKIPPED]
    counts["not_applied"] = [s for s in cfg.steps if s in SKIPPED] + ["duplicate_id", "exact_dedup", "near_dedup"]
    return counts
