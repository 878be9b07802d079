"""Hostile documents in curation: invisible characters do not hide PII, abuse or blocked domains; a document that
stalls a rule is rejected `rule_timeout:<rule>` and the rest goes on; a partition that kills its process twice is
quarantined `worker_killed` and counted; random text through the whole rule chain conserves rows in bounded time."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tasks.core.isolate import ChildDied, TimedOut, in_child, time_limit
from tasks.curate import stage as curate_stage
from tasks.curate.config import CurateConfig
from tasks.curate.registry import RULES
from tasks.curate.rules.hap import HapConfig, hap
from tasks.curate.rules.legal_policy import legal_policy
from tasks.curate.rules.normalize import NormalizeConfig, normalize
from tasks.curate.rules.pii import redact
from tasks.curate.step import result
from tasks.govern.legal import DocumentPolicy

ZW = ["\u200b", "\u200c", "\u200d", "\u00ad", "\u2060", "\u202e", "\u2066", "\ufeff", "\U000e0041"]
POLICY = DocumentPolicy(("MIT",), ("bad.example",), (), (), (), (), (), False, False)


@pytest.mark.parametrize("mark", ZW)
def test_invisible_characters_do_not_hide_an_email_a_word_or_a_domain(mark):
    out, counts = redact(f"write to john.doe@exam{mark}ple.com or jo{mark}hn@exa{mark}mple.org today")
    assert counts["email"] == 2 and "@" not in out
    clean = "The committee met on Tuesday to discuss the budget."
    res = hap(pd.DataFrame({"text": [clean, clean + f" You are a f{mark}u{mark}cking idiot."]}), HapConfig(threshold=0.9))
    assert list(res.keep) == [True, False]
    frame = pd.DataFrame({"doc_id": ["d"], "source_id": ["s"], "license": ["MIT"], "text": ["x"],
                          "url": [f"https://b{mark}ad.exa{mark}mple/page"]})
    assert list(legal_policy(frame, POLICY).reasons) == ["blocked_domain:bad.example"]
    norm = normalize(pd.DataFrame({"text": [f"ab{mark}cd"]}), NormalizeConfig())
    assert norm.frame["text"][0] == "abcd"


def test_in_child_returns_raises_and_survives_a_dying_child():
    assert in_child(sum, [1, 2, 3]) == 6
    with pytest.raises(ZeroDivisionError):
        in_child(lambda: 1 / 0)
    with pytest.raises(ChildDied, match="killed by SIGKILL"):
        in_child(lambda: os.kill(os.getpid(), signal.SIGKILL))

    def stalls():
        with time_limit(0.2):
            time.sleep(5)

    t0 = time.monotonic()
    with pytest.raises(TimedOut):
        in_child(stalls)
    assert time.monotonic() - t0 < 3


def _partition(tmp_path, texts):
    df = pd.DataFrame({"doc_id": [f"{i:032d}" for i in range(len(texts))], "source_id": "s", "domain": "general",
                       "license": "MIT", "native_id": "n", "text": texts, "url": None, "origin_file": "f",
                       "content_sha256": "x"})
    path = tmp_path / "part.parquet"
    df.to_parquet(path)
    return str(path)


def _poisoned(df, cfg):
    """A rule that stalls on one document and kills its process on another."""
    for t in df["text"]:
        if "STALL" in t:
            time.sleep(30)
        if "KILL" in t:
            os.kill(os.getpid(), signal.SIGKILL)
    return result(df, [None] * len(df))


def test_a_stalling_document_is_rejected_and_a_killing_partition_quarantined(tmp_path, monkeypatch):
    monkeypatch.setitem(RULES, "normalize", (_poisoned, "normalize"))  # the forked child sees the patched registry
    cfg = CurateConfig(steps=("normalize",), doc_time_budget_s=0.5)
    stage_uri = str(tmp_path / "curate")
    good = [f"an ordinary document number {i}" for i in range(5)]
    t0 = time.monotonic()
    stats = curate_stage._local(_partition(tmp_path, good + ["this one will STALL"]), "p0", stage_uri, cfg, POLICY)
    assert time.monotonic() - t0 < 15
    (normalize_stat,) = [s for s in stats if s["step"] == "normalize"]
    assert normalize_stat["in"] == 6 and normalize_stat["kept"] == 5
    assert normalize_stat["rejected"] == {"rule_timeout:normalize": 1}
    stats = curate_stage._local(_partition(tmp_path, good + ["this one will KILL"]), "p1", stage_uri, cfg, POLICY)
    assert stats[0] == {"step": "quarantine", "in": 6, "kept": 0, "bytes_in": stats[0]["bytes_in"],
                        "rejected": {"worker_killed": 6}}
    rejected = pd.read_parquet(tmp_path / "curate" / "rejects" / "00_quarantine" / "p1.parquet")
    assert len(rejected) == 6 and rejected["reject_reason"].str.startswith("worker_killed: killed by SIGKILL").all()
    assert len(pd.read_parquet(tmp_path / "curate" / "_work" / "p1.parquet")) == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400),
                          st.sampled_from(["ab-" * 3000, "a." * 4000, "@" * 5000, "[" * 5000, "x" * 20000,
                                           "\u200b".join("word" for _ in range(500)), "1.2" * 3000])),
                min_size=1, max_size=12))
def test_random_text_through_every_rule_conserves_rows_in_bounded_time(tmp_path, texts):
    cfg = CurateConfig(doc_time_budget_s=5.0)
    frame = pd.DataFrame({"doc_id": [f"{i:032d}" for i in range(len(texts))], "source_id": "s", "license": "MIT",
                          "url": None, "text": texts})
    t0 = time.monotonic()
    for step in [*cfg.steps, "c4_quality"]:
        rule, source = RULES[step]
        res = rule(frame, POLICY if source == "policy" else getattr(cfg, source))
        assert len(res.keep) == len(frame) == len(res.reasons)
        assert all((r is None) == bool(k) for k, r in zip(res.keep, res.reasons))
        frame = res.frame.assign(**res.signals)[np.asarray(res.keep)].reset_index(drop=True)
    assert time.monotonic() - t0 < 20


WARM = """
import sys
import pandas as pd
from tasks.curate.config import CurateConfig
from tasks.curate.registry import RULES
from tasks.curate.stage import _rule_config, _run_rule, warm_up

cfg = CurateConfig()
if sys.argv[1] == "warm":
    warm_up(tuple(cfg.steps), cfg.hap.words_path)
df = pd.DataFrame({"text": ["Plain words first, then odd chunks like foo/bar_baz, U.S.-style e.g. and 3.14 here. "
                            "A second sentence follows it, in plain English for the language models."] * 3})
for step in ("gopher_quality", "language", "hap"):
    rule, source = RULES[step]
    res = _run_rule(rule, df, _rule_config(cfg, None, source), step, 0.05)
    print(step, *res.reasons)
"""


def test_models_are_loaded_before_a_documents_time_budget_runs():
    """spaCy (which imports torch), the language-id and HAP models load on first use. Loaded inside a document's
    time budget, the import was cut short on a busy machine, torch stayed half-registered and every later import
    of it failed: the workers load them first (warm_up), and documents are then judged in milliseconds."""
    import subprocess
    import sys

    from tests.conftest import REPO

    cold = subprocess.run([sys.executable, "-c", WARM, "cold"], cwd=REPO, capture_output=True, text=True, timeout=300)
    warm = subprocess.run([sys.executable, "-c", WARM, "warm"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert warm.returncode == 0 and "rule_timeout" not in warm.stdout, warm.stdout + warm.stderr[-3000:]
    assert "rule_timeout" in cold.stdout or cold.returncode != 0, cold.stdout  # the budget is too short for loading
