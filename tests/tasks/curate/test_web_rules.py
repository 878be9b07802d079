"""C4 and FineWeb rules on hand-made pages (datatrove's definitions and published thresholds)."""
import pandas as pd

from tasks.curate.rules.c4_quality import C4QualityConfig, c4_quality
from tasks.curate.rules.fineweb_quality import FineWebQualityConfig, fineweb_quality

SENT = "This sentence ends with a full stop and has enough words."


def _reasons(fn, texts, cfg):
    res = fn(pd.DataFrame({"text": texts}), cfg)
    return [None if k else r for k, r in zip(res.keep, res.reasons)], res


def test_c4_keeps_only_good_lines_and_rejects_by_document_rules():
    page = "\n".join(["Home | About | Contact", SENT, "Please enable javascript to view this site.", SENT,
                      "Read our privacy policy.", "A claim with a citation[1] ends with a full stop.", "short.", SENT,
                      SENT + " [2]", SENT])
    reasons, res = _reasons(c4_quality, [page, "\n".join([SENT] * 2), "\n".join([SENT] * 5 + ["Lorem ipsum dolor sit."]),
                                         "\n".join([SENT] * 5 + ["Use {curly} braces here."])], C4QualityConfig())
    assert reasons == [None, "too_few_sentences", "lorem_ipsum", "curly_bracket"]
    kept = res.frame["text"][0].splitlines()  # citations stripped; a line ending in one has no end mark (as datatrove)
    assert kept == [SENT, SENT, "A claim with a citation ends with a full stop.", SENT, SENT]


def test_fineweb_rules():
    good = "\n".join([SENT + f" Number {i} follows." for i in range(8)])
    no_punct = "\n".join([f"a line without an ending mark number {i}" for i in range(10)])
    short = "\n".join([f"short {i}." for i in range(10)] + [SENT])
    dup = "\n".join([SENT] * 3 + [SENT + " More."])
    listy = "\n".join(f"item{i}." for i in range(40))
    reasons, _ = _reasons(fineweb_quality, [good, no_punct, short, dup, "   \n  "], FineWebQualityConfig())
    assert reasons == [None, "line_punct_ratio", "short_line_ratio", "char_dup_ratio", "empty"]
    reasons, _ = _reasons(fineweb_quality, [listy], FineWebQualityConfig(short_line_thr=1.0))
    assert reasons == ["list_ratio"]
