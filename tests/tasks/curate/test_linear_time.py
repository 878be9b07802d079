"""Every curation rule (and the dedup hashing) runs in time linear in the document: on adversarial text of size n and
4n the time may grow at most 6x (linear is 4x). Super-linear patterns are how one web page stalls a whole run."""
from __future__ import annotations

import time

import pandas as pd
import pytest

from tasks.curate.config import CurateConfig
from tasks.curate.dedup import dedup_key
from tasks.curate.minhash import signatures
from tasks.curate.registry import RULES
from tasks.govern.legal import DocumentPolicy

EN = "The committee reviewed the quarterly report and approved the budget for the new library. " * 10
# repeated units that defeat naive regexes: separators inside words, dots, at-signs, scheme markers, long words,
# long digit runs, deep nesting, lines without spaces, markdown and URL shapes
UNITS = ["ab-", "a.", "-", "@", "://", "x", "7", "(", "[", "a@a.", ".", "ab_", "x.y", "1.2", "'s", "#", "0:",
         "a'", "a--", "http://a", "www.", "a]", "\\", "a/", "1,0", "aB.", "A.", "$", "\u200b", "\u00ad", "a\u0301",
         "\u202e", "a\n", "<a>", "{\"", "🙂", "東",
         "jews rats ", "black people ", "you hope ", "sh!t ", "f u c k ",  # what the HAP readers look for
         '" said ', "'a' said ", "“x” ", "“", " '"]  # quotations in reported speech
POLICY = DocumentPolicy(allowed_licenses=("MIT",), blocked_domains=("bad.example",), blocked_url_patterns=("/casino/",),
                        optout_sources=(), optout_domains=("private.example",), optout_url_patterns=("/private/",),
                        optout_doc_ids=(), reject_copyright_notices=False, ut1_blocklist=False)
N = 6_000


def _frame(unit: str, n: int) -> pd.DataFrame:
    body = EN + unit * (n // len(unit))
    return pd.DataFrame({"text": [body], "doc_id": ["d"], "source_id": ["s"], "license": ["MIT"],
                         "url": ["http://x.example/" + unit * (n // len(unit) // 10)]})


def _seconds(fn, repeat: int = 3) -> float:
    """The CPU time of the calling thread (not wall time: on a machine running other tests, a run preempted for a
    few milliseconds would read as growth), best of `repeat`."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
    return best


def _growth(fn_of_n, repeat: int = 3) -> tuple[float, float]:
    small, large = _seconds(lambda: fn_of_n(N), repeat), _seconds(lambda: fn_of_n(4 * N), repeat)
    growth, seconds = large / max(small, 2e-4), large  # below ~0.2 ms the clock, not the algorithm, decides
    if growth > 6 and seconds > 0.01 and repeat < 9:  # measured again before it counts: caches and clocks are
        return _growth(fn_of_n, 9)                     # noisy, a quadratic rule is 16x every time
    return growth, seconds


@pytest.mark.parametrize("step", sorted(RULES))
def test_every_rule_is_linear_on_adversarial_text(step):
    rule, source = RULES[step]
    cfg = POLICY if source == "policy" else getattr(CurateConfig(), source)
    slow = {}
    for unit in UNITS:
        growth, seconds = _growth(lambda n: rule(_frame(unit, n), cfg))
        if growth > 6 and seconds > 0.01:
            slow[repr(unit)] = f"{growth:.1f}x ({seconds:.3f} s at {4 * N} chars)"
    assert not slow, f"{step} grows super-linearly on: {slow}"


@pytest.mark.parametrize("name, fn", [("dedup_key", dedup_key), ("minhash", lambda t: signatures([t], 5, 112))])
def test_dedup_hashing_is_linear_on_adversarial_text(name, fn):
    slow = {}
    for unit in UNITS:
        growth, seconds = _growth(lambda n: fn(EN + unit * (n // len(unit))))
        if growth > 6 and seconds > 0.01:
            slow[repr(unit)] = f"{growth:.1f}x"
    assert not slow, f"{name}: {slow}"
