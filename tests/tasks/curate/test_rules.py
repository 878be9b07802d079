"""Curation rules pinned on hand-made cases (Gopher definitions as in datatrove), and every rule of the registry
conserving rows on random text."""
import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from tasks.curate.config import CurateConfig
from tasks.curate.dedup import dedup_key
from tasks.curate.registry import RULES
from tasks.curate.rules.gopher_quality import GopherQualityConfig, gopher_quality
from tasks.curate.rules.gopher_repetition import GopherRepetitionConfig, gopher_repetition
from tasks.curate.rules.normalize import NormalizeConfig, normalize
from tasks.curate.text import normalize_text

CFG = GopherQualityConfig(min_words=5)
REP = GopherRepetitionConfig()
GOOD = "The cat sat on the mat and looked at the bird with interest while the sun was shining."
# Long enough that no single n-gram dominates (Gopher's top n-gram rules reject short texts)
LONG = ("Memory safety bugs remain the largest class of exploitable weaknesses in systems software. A buffer "
        "overflow happens when a program writes past the end of an allocated region, corrupting adjacent data "
        "or control information such as return addresses. Attackers turn such corruption into arbitrary code "
        "execution by redirecting the instruction pointer toward injected payloads or reused gadgets. Modern "
        "mitigations include stack canaries, address space layout randomisation, non-executable pages and "
        "control-flow integrity, yet each raises the cost of exploitation rather than removing the flaw. "
        "Languages with bounds checking eliminate whole categories of these errors at compile time.")


def _reasons(fn, texts, cfg=CFG):
    res = fn(pd.DataFrame({"text": texts}), cfg)
    return [None if k else r for k, r in zip(res.keep, res.reasons)]


def test_normalize_nfc_controls_whitespace():
    assert normalize_text("Cafe\u0301\x07  au\t lait \r\n\n\n\nnext ") == "Café au lait\n\nnext"
    assert _reasons(normalize, ["ok text", "\x01\x02  \n "], NormalizeConfig()) == [None, "empty_after_normalization"]


def test_gopher_quality_rules():
    cases = {
        GOOD: None,
        "the cat and dog": "gopher_short_doc",
        "the and to of " + " ".join(["a"] * 20): "gopher_below_avg_threshold",
        "the and " + " ".join(["incomprehensibilities"] * 10): "gopher_above_avg_threshold",
        GOOD + " # # # # # # # # # # #": "gopher_too_many_hashes",
        "\n".join(["- the item with the list and more words here"] * 10): "gopher_too_many_bullets",
        "\n".join([GOOD + "..."] * 4): "gopher_too_many_end_ellipsis",
        "cat sat on mat looked bird while sun shining brightly today": "gopher_enough_stop_words",
        "the and " + " ".join(["1234 5678"] * 10): "gopher_below_alpha_threshold",
    }
    assert _reasons(gopher_quality, list(cases)) == list(cases.values())


def test_gopher_quality_word_count_ignores_pure_punctuation():
    res = gopher_quality(pd.DataFrame({"text": ["the cat - and the dog ; !"]}), CFG)
    assert res.signals["num_words"][0] == 5


def test_gopher_repetition_duplicate_lines():
    dup = "\n".join(["the same line repeated here"] * 5 + ["a different one"])
    assert _reasons(gopher_repetition, [LONG, dup], REP) == [None, "dup_line_frac"]


def test_dedup_key_is_case_and_whitespace_insensitive():
    assert dedup_key("Hello   World\n") == dedup_key("hello world")
    assert dedup_key("hello world") != dedup_key("hello world!")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(max_size=300), min_size=1, max_size=20))
def test_local_steps_never_crash_and_conserve(texts):
    df = pd.DataFrame({"text": texts})
    cfg = CurateConfig()
    for step in [s for s in cfg.steps if s != "legal_policy"] + ["c4_quality"]:
        rule, source = RULES[step]
        res = rule(df, getattr(cfg, source))
        assert len(res.keep) == len(df) == len(res.reasons)
        assert all((r is None) == k for k, r in zip(res.keep, res.reasons))
        df = res.frame[np.asarray(res.keep)].reset_index(drop=True)


def test_gopher_repetition_ngram_rules():
    top = "hello world " * 50 + LONG
    dup10 = " ".join(f"w{i}" for i in range(40)) + " " + " ".join(f"w{i}" for i in range(40)) + " " + LONG
    paras = "\n\n".join(["a paragraph that repeats"] * 3 + ["x"])
    short = "a short note"  # its only 2-gram is most of the text
    assert _reasons(gopher_repetition, [top, dup10, paras, LONG, short], REP) == [
        "top_2_gram", "duplicated_10_n_grams", "dup_para_frac", None, "top_2_gram"]


def test_language_id_reads_technical_english_as_english():
    """Options, paths and capitals made the fastText model unsure of plain English (0.57 on this paragraph): it sees
    the text lower-cased with digits and punctuation removed, and lingua confirms."""
    import pandas as pd

    from tasks.curate.rules.language import LanguageConfig, language

    text = ("Colon-delimited paths: MANPATH=/usr/share/man:/usr/local/man. If $MANWIDTH is set, its value is used as "
            "the line length for which manual pages should be formatted. Use -P or $MANPAGER to choose the PAGER "
            "(default: less -s).")
    res = language(pd.DataFrame({"text": [text, "Der schnelle braune Fuchs springt über den faulen Hund."]}),
                   LanguageConfig())
    assert list(res.keep) == [True, False] and res.signals["lang_score"][0] >= 0.9
    assert list(res.reasons) == [None, "language_de"]


def test_language_screen_and_confirmation_each_reject_what_the_other_lets_through():
    """The two models fail differently: a paragraph the fastText screen reads as English with some probability
    but which is another language is rejected by the confirmation; `confirm = false` is fastText alone."""
    import pandas as pd

    from tasks.curate.rules.language import LanguageConfig, _screen, language

    # a translated message catalogue entry, options and file names left in English: the screen passes it
    text = ("deluser [--system] [--remove-home] [--remove-all-files] [--backup] [--backup-to dir] [--conf Datei] "
            "[--quiet] [--verbose] [--debug] Benutzer entfernen, Gruppe entfernen, Datei nicht gefunden")
    assert LanguageConfig().screen_min_score <= _screen(text)["en"] < 0.5
    alone = language(pd.DataFrame({"text": [text]}), LanguageConfig(confirm=False, min_score=0.05))
    both = language(pd.DataFrame({"text": [text]}), LanguageConfig())
    assert list(alone.keep) == [True] and list(both.keep) == [False]
    assert list(both.reasons) == ["language_low_confidence"] and both.signals["lang"][0] == "de"
    assert LanguageConfig(languages=(), min_score=2).problems() and not LanguageConfig().problems()
