"""spaCy's tokenizer algorithm run chunk by chunk in Python (tasks/curate/affixes.py) gives what spaCy's own
tokenizer gives, on chunks built to reach every branch: special cases, prefixes, suffixes (bounded and unbounded,
units, quotes, the period rules by letter case), infixes (hyphens, commas, colons, periods between letters),
URLs, emoticons re-joined by spaCy's special-case matcher, and the narrowed searches' edge cases."""
import random

import spacy
from hypothesis import given, settings, strategies as st

from tasks.curate.affixes import Affixes, TokenizerRules
from tasks.curate.regex_reading import required_chars, top_level_alternatives

_TOK = spacy.blank("en").tokenizer
_CHUNKS = Affixes(TokenizerRules.from_spacy(spacy.blank("en").tokenizer))

FRAGMENTS = (
    ["word", "Word", "WORD", "aB", "I", "e", "x", "foo_bar", "naïve", "Ωmega", "東京", "straße", "café", "ß"]
    + ["1", "42", "3.5", "1.2.3", "10", "2024-01-02", "0x1F", "v2", "T1055"]
    + list(".,;:!?()[]{}<>\"'`*&#_-+=/\\|@$%^~") + ["…", "...", "..", "—", "–", "--", "---", "‘", "’", "“", "”",
                                                  "«", "»", "¿", "¡", "·", "。", "，"]
    + ["km", "kg", "mph", "°C", "°F", "%", "$", "€", "£", "US$", "C$", "©", "®", "™", "°", "✓", "☺", "🙂", "²"]
    + ["'s", "'S", "’s", "n't", "'ll", "'re", "'d", "e.g.", "i.e.", "etc.", "Mr.", "Dr.", "U.S.", "a.", "b.",
       "can", "not", "cannot", "gonna", "don't", "it's", "ain't", "y'all", "o.O", "o_O", ":)", ":-)", ";)", "):",
       ":(", ":P", "<3", "^_^", "(:", ":]", "[:", ":*", "8)", "=)", "(=", ":')", ":x", ":}"]
    + ["http://", "https://", "www.", "example.org", "x.org/a", "user@host.com", "/usr/bin/", "C++", "a/b", "?q=1",
       "#anchor", ":8080"]
)


def _chunk(rng: random.Random) -> str:
    return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 6)))


def test_chunks_of_every_kind_are_tokenized_as_spacy_tokenizes_them():
    rng = random.Random(7)
    chunks = {_chunk(rng) for _ in range(40_000)} | set(FRAGMENTS)
    wrong = [(c, _CHUNKS(c), [t.text for t in _TOK(c)]) for c in sorted(chunks)
             if _CHUNKS(c) != [t.text for t in _TOK(c)]]
    assert not wrong, wrong[:10]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Zs", "Zl", "Zp", "Cc", "Cs"]),
               min_size=1, max_size=12))
def test_any_chunk_is_tokenized_as_spacy_tokenizes_it(chunk):
    chunk = "".join(chunk.split()) or "x"
    assert _CHUNKS(chunk) == [t.text for t in _TOK(chunk)]


def test_pinned_chunks():
    cases = {"foo(bar):": ["foo(bar", "):"], "(closes:": ["(", "closes", ":"], "--option=value": ["--option", "=", "value"],
             "don't": ["do", "n't"], "aB.": ["aB."], "WORD.": ["WORD", "."], "3.5km": ["3.5", "km"],
             "https://x.org/a,": ["https://x.org/a", ","], "hello...": ["hello", "..."], "e.g.,": ["e.g.", ","],
             "well-known": ["well", "-", "known"], "a,b": ["a", ",", "b"]}
    for chunk, want in cases.items():
        assert _CHUNKS(chunk) == want == [t.text for t in _TOK(chunk)], chunk


def test_patterns_are_split_into_their_top_level_alternatives():
    assert top_level_alternatives(r"a|b(c|d)|[|(]|\||e") == ["a", "b(c|d)", "[|(]", r"\|", "e"]
    assert top_level_alternatives(r"[]|]x|y") == ["[]|]x", "y"]
    assert top_level_alternatives("a(b") is None


def test_url_matches_are_screened_by_the_characters_every_match_needs():
    from re import _parser

    assert required_chars(list(_parser.parse(r"(?:ab|ac)d+(?:x)?"))) == {"a", "d"}
    url = _TOK.url_match.__self__.pattern
    assert "." in required_chars(list(_parser.parse(url)))


def test_tokenizer_rules_are_kept_per_spacy_version_and_read_back_without_spacy(tmp_path, monkeypatch):
    from tasks.curate import text

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    from spacy.pipeline.sentencizer import Sentencizer

    want = TokenizerRules.from_spacy(spacy.blank("en").tokenizer, tuple(Sentencizer.default_punct_chars))
    assert text.tokenizer_rules() == want
    (kept,) = (tmp_path / "keel").glob(f"spacy-{spacy.__version__}-en-rules.json")

    def no_spacy():
        raise AssertionError("spaCy imported although its rules were kept")
    monkeypatch.setattr(text, "_import_spacy", no_spacy)
    assert text.tokenizer_rules() == want
    assert Affixes(text.tokenizer_rules())("foo(bar):") == ["foo(bar", "):"]
    assert "." in text.tokenizer_rules().sentence_ends

    kept.write_text('{"specials": {"x": ', encoding="utf-8")  # cut short: read from spaCy again, rewritten
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert text.tokenizer_rules() == want
    assert TokenizerRules.from_json(kept.read_text(encoding="utf-8")) == want
