"""Text primitives: word splitting as spaCy's English tokenizer splits (datatrove's filters see these words), its
fast path held equal to spaCy."""
from hypothesis import given, settings, strategies as st

import spacy

from tasks.curate.text import duplicates, split_words

_TOK = spacy.blank("en").tokenizer  # a tokenizer of its own, not keel's


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(categories=["Lu", "Ll", "Lt", "Lm", "Lo"]), min_size=1, max_size=20))
def test_the_fast_path_gives_what_spacy_gives_a_word_of_letters(word):
    """A chunk of letters skips spaCy: it must be exactly what spaCy makes of it (one token, or a special case)."""
    assert split_words(word) == [t.text for t in _TOK(word)]


def test_documents_are_split_as_spacy_splits_them():
    import spacy

    tok = spacy.blank("en").tokenizer
    text = ("I'd say don't -- the Mr. Smith's apt-patterns(7): Grouping (foo) e.g. 3.5% CWE-79 at "
            "https://example.org/a.b?c=1, C++ data.(Citation: x) \\[Aside] ne'er 'em... প্র o'er")
    assert split_words(text) == [t.text for t in tok(text) if t.text.strip()]


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


def test_sentences_are_counted_as_spacys_sentencizer_counts_them():
    from spacy.pipeline.sentencizer import Sentencizer

    from tasks.curate.text import sentence_count

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    for line in ("Hello there. This is it! Done...", 'One. "Two." three', "Mon, 28 Feb 2011 17:25:17 -0800 It was.",
                 "e.g. this. And (that). Or? Yes!! no", "No end mark at all", "Ein Satz. Noch einer。 第三"):
        assert sentence_count(split_words(line)) == len(list(nlp(line).sents)), line
    assert sentence_count([]) == 0 and "." in Sentencizer.default_punct_chars
