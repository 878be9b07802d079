"""Text primitives: word splitting pinned to spaCy's English tokenizer (as datatrove's filters see words), with
its fast paths held equal to the full token pattern."""
from hypothesis import given, settings, strategies as st

from tasks.curate.text import _WORD_TOKENS, duplicates, split_words


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["cannot", "Don't", "dont", "I'd", "kill'd", "o'er", "John's", "'em",
                                           "lord,--", "e.g.", "A.", "/dir/", "binary/compiled", "T1550/003",
                                           "\\[Aside]", "Regsvr32.exe", "end.The", "(word", "word)", "x):",
                                           "https://a.org/x.", "mitre.org/techniques/T1", "3.5", "CWE-79", "—",
                                           "gonna", "Wont", "and/or", "domain(s)", "...", "--", "'", "“quoted”"]),
                          st.text(alphabet=st.characters(codec="utf-8"), max_size=12)),
                max_size=30), st.sampled_from([" ", "\n", "  ", "\t"]))
def test_word_split_fast_paths_equal_the_token_pattern(chunks, sep):
    text = sep.join(chunks)
    assert split_words(text) == _WORD_TOKENS.findall(text)


def test_word_split_follows_spacy_on_pinned_cases():
    cases = {"I'd say don't": ["I", "'d", "say", "do", "n't"], "kill'd ne'er l'envoy": ["kill'd", "ne'er", "l'envoy"],
             "cannot dont": ["can", "not", "do", "nt"], "John's": ["John", "'s"], "my lord,-- I": ["my", "lord,--", "I"],
             "binary/compiled T1550/003 /dir/": ["binary", "/", "compiled", "T1550/003", "/dir/"],
             "\\[Aside] end.The Regsvr32.exe": ["\\[Aside", "]", "end", ".", "The", "Regsvr32.exe"],
             "see attack.mitre.org/techniques/T1055/001.": ["see", "attack.mitre.org/techniques/T1055/001", "."]}
    for text, want in cases.items():
        assert split_words(text) == want, text


def test_duplicates_counts_repeats_and_their_characters():
    assert duplicates(["a", "bb", "a", "bb", "bb", "c"]) == (3, 5)
    assert duplicates([]) == (0, 0)
