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


def _datatrove_repetition(text: str) -> str | None:
    """datatrove's GopherRepetitionFilter, written as it is (Counter over joined n-grams, the walk of
    find_all_duplicate), over the same words."""
    import re
    from collections import Counter

    from tasks.curate.text import split_words

    def dups(items):
        seen, n, chars = set(), 0, 0
        for x in items:
            if x in seen:
                n, chars = n + 1, chars + len(x)
            seen.add(x)
        return n, chars

    paragraphs = re.split(r"\n{2,}", text.strip())
    n, chars = dups(paragraphs)
    if n / len(paragraphs) > 0.3:
        return "dup_para_frac"
    if chars / max(len(text), 1) > 0.2:
        return "dup_para_char_frac"
    lines = re.split(r"\n+", text)
    n, chars = dups(lines)
    if n / len(lines) > 0.3:
        return "dup_line_frac"
    if chars / max(len(text), 1) > 0.2:
        return "dup_line_char_frac"
    words = split_words(text)
    for n, frac in ((2, 0.2), (3, 0.18), (4, 0.16)):
        grams = [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]
        if grams:
            gram, count = Counter(grams).most_common(1)[0]
            if len(gram) * count / max(len(text), 1) > frac:
                return f"top_{n}_gram"
    for n, frac in ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)):
        seen, repeated, i = set(), 0, 0
        while i < len(words) - n + 1:
            gram = "".join(words[i:i + n])
            if gram in seen:
                repeated, i = repeated + len(gram), i + n
            else:
                seen.add(gram)
                i += 1
        if repeated / max(len(text), 1) > frac:
            return f"duplicated_{n}_n_grams"
    return None


VOCAB3 = [a + b + c for a in "bdfgklmnprstvz" for b in "aeiou" for c in "bdgkmnprtx"]  # 630 words of 3 letters
VOCAB4 = [w + d for w in VOCAB3 for d in "aeiou"]  # 3,150 of 4


@st.composite
def _repetitive_texts(draw):
    """Words of equal length (so that datatrove's joined n-grams cannot collide), with repeated runs spliced in,
    over lines and paragraphs: texts on both sides of each rule's threshold. From a few words, the top n-gram rules
    decide; from hundreds, the duplicated n-gram ones."""
    vocab = VOCAB3[:draw(st.sampled_from([3, 6, 12, 40, 630]))]
    words = draw(st.lists(st.sampled_from(vocab), min_size=draw(st.sampled_from([0, 20, 150])), max_size=500))
    for _ in range(draw(st.integers(0, 5))):
        if len(words) > 2:
            a = draw(st.integers(0, len(words) - 1))
            run = words[a:a + draw(st.integers(1, 14))]
            at = draw(st.integers(0, len(words)))
            words[at:at] = run * draw(st.integers(1, 4))
    seps = draw(st.lists(st.sampled_from([" "] * 12 + ["\n", "\n\n", ", ", ". "]), min_size=len(words),
                         max_size=len(words)))
    return "".join(w + s for w, s in zip(words, seps))


@settings(max_examples=400, deadline=None)
@given(_repetitive_texts())
def test_gopher_repetition_gives_datatrove_s_reason_whatever_it_skips(text):
    """The rule skips the n-gram lengths whose counts are bounded below their threshold (an n-gram occurs at most
    as often as any shorter n-gram in it); the reason must be the one datatrove's full computation gives."""
    from tasks.curate.rules.gopher_repetition import repetition_reason

    assert repetition_reason(text, REP)[0] == _datatrove_repetition(text)


def test_gopher_repetition_at_each_duplicated_n_gram_threshold():
    """A run of m words repeated r times among distinct words (the copies side by side, or apart), the text grown
    a word at a time: the share of repeated n-grams passes each threshold, and the reason must change where
    datatrove's does, to the word."""
    from collections import Counter

    from tasks.curate.rules.gopher_repetition import repetition_reason

    decided = Counter()
    # the copies' words, r * m, against 40 to 1,000 others: shares from past 0.15 to below 0.10
    for m, r, apart, most in ((5, 3, False, 200), (8, 4, True, 400), (12, 3, True, 400), (6, 6, False, 400),
                              (5, 24, False, 1100)):
        run = VOCAB4[-m:]
        copies = [w for i in range(r) for w in run + ([VOCAB4[-100 + i]] if apart else [])]
        for filler in range(40, most):
            text = " ".join(VOCAB4[:filler // 2] + copies + VOCAB4[filler // 2:filler])
            expected = _datatrove_repetition(text)
            assert repetition_reason(text, REP)[0] == expected, (m, r, apart, filler)
            decided[expected] += 1
    assert {f"duplicated_{n}_n_grams" for n in range(5, 11)} <= set(decided) and decided[None] > 50
