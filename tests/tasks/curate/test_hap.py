"""HAP scoring: sentence-level maximum (one abusive sentence is not diluted by a long clean document), the word
list raising the score, the rule's threshold, and the rate used for model generations."""
import pandas as pd

from tasks.curate.rules.hap import HapConfig, hap, hap_rate, hap_scores

CLEAN = ("The committee reviewed the quarterly report and approved the budget for the new library. "
         "Volunteers will help catalogue the donated books next month.")


def test_one_abusive_sentence_is_not_diluted():
    long_clean = " ".join([CLEAN] * 30)
    scores = hap_scores([long_clean, long_clean + " You are a worthless piece of shit."])
    assert scores[0] < 0.5 < scores[1]


def test_word_list_hits_raise_the_score(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("# test list\nflumbergast\n")
    plain, listed = hap_scores([CLEAN, CLEAN + " What a flumbergast."], str(words))
    assert plain < 0.5 and listed >= 0.95


def test_rule_rejects_at_the_threshold_and_keeps_scores():
    df = pd.DataFrame({"text": [CLEAN, "You stupid fucking idiot, shut up."]})
    res = hap(df, HapConfig(threshold=0.9))
    assert list(res.keep) == [True, False] and list(res.reasons) == [None, "hap_score"]
    assert res.signals["hap_score"][1] >= 0.9 > res.signals["hap_score"][0]


def test_rate_of_generations():
    scores, rate = hap_rate([CLEAN, "fuck off you moron", CLEAN, CLEAN], HapConfig(threshold=0.9))
    assert len(scores) == 4 and rate == 0.25
    assert hap_rate([], HapConfig()) == ([], 0.0)


ABUSE_WITHOUT_SWEARING = ["You are a worthless piece of garbage and nobody likes you.", "I will hurt you when I see you.",
                          "Go kill yourself.", "Immigrants are vermin and should be deported.", "I hate all Mexicans.",
                          "Go back to your country.", "Kill all the refugees.",
                          "Do the world a favour and jump off a bridge.", "go play in traffic loser"]
NOT_ABUSE = ["Kill the child process with SIGKILL if it does not exit.", "The attacker can exploit the buffer overflow.",
             "Muslims around the world celebrate Eid al-Fitr.", "Immigrants contributed to the growth of the city.",
             "Through a chink in the wall they whispered.", "The idiot test checks nothing.",
             "Pigs are intelligent animals.", "Go back to the previous page.", "I will find you a better solution.",
             "Ban the IP address after five failed logins.", "You had a bastard file format to parse.",
             "Do me a favour and jump in the car.", "We watched divers jump off the cliff at Acapulco.",
             "Don't drink bleach, it is poisonous."]


def test_hate_and_abuse_without_swear_words_are_rejected_at_the_default_threshold():
    cfg = HapConfig()
    scores = hap_scores(ABUSE_WITHOUT_SWEARING + NOT_ABUSE)
    caught = [t for t, s in zip(ABUSE_WITHOUT_SWEARING, scores) if s >= cfg.threshold]
    wrong = [t for t, s in zip(NOT_ABUSE, scores[len(ABUSE_WITHOUT_SWEARING):]) if s >= cfg.threshold]
    assert caught == ABUSE_WITHOUT_SWEARING and wrong == []


def test_word_list_sections_always_and_directed(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("[always]\nflumbergast\n[directed]\nnincompoop\n")
    cfg = HapConfig(words=str(words))
    scores = hap_scores([CLEAN + " A flumbergast appeared.", CLEAN + " You nincompoop!", CLEAN + " The nincompoop test."],
                        cfg.words_path)
    assert list(scores >= cfg.threshold) == [True, True, False]
    words.write_text("[sometimes]\nx\n")
    import pytest

    with pytest.raises(ValueError, match="unknown section"):
        hap_scores([CLEAN], str(words))


def test_batched_classifier_gives_the_packages_probabilities():
    """hap_model.predict_prob reads the package's model and must agree with its own predict_prob: ASCII and other
    sentences mixed, empty ones, stop words only, the separator word inside a sentence, underscores and digits."""
    import numpy as np
    from profanity_check import predict_prob as package

    from tasks.curate.rules.hap_model import _SEP, predict_prob

    sentences = ["", "   ", "the and of", "Fuck you", "You are an IDIOT!!", f"{_SEP} shit {_SEP.upper()}",
                 f"x{_SEP}y damn", "ÉCOLE shit Straße", "don’t be a bitch", "a_b snake_case 42 x", "kill -9 the child",
                 "Adversaries may abuse the KernelCallbackTable.", "naïve café résumé crap", "日本語 fuck テキスト"] * 3
    assert np.abs(predict_prob(sentences) - package(sentences)).max() < 1e-9
    ascii_only = [s for s in sentences if s.isascii()]
    assert np.abs(predict_prob(ascii_only) - package(ascii_only)).max() < 1e-9
    assert predict_prob([]).shape == (0,)
    for alone in (["", "!!"], ["é ü"]):  # no token at all, in either path
        assert np.abs(predict_prob(alone) - package(alone)).max() < 1e-9


def test_lines_scored_in_one_string_give_the_packages_probabilities():
    """hap_model.predict_lines (the sentences of many documents one a line, tokenized in Arrow): each line's
    probability is the package's for that sentence; a line without a token (blank, spaces, punctuation) is 0."""
    import numpy as np
    from profanity_check import predict_prob as package

    from tasks.curate.rules.hap_model import predict_lines

    lines = ["fuck you", "", "   ", "  you are an idiot  ", "!!!", "the and of", " leading", "trailing ", "a", "_",
             "snake_case x86_64 42 shit", "\tdamn\tit", "kill -9 the child", "crap... what", "x"] * 2
    other = ["résumé shit", "don’t be a bitch", "naïve\u00a0crap", "fuck\u2028you", "日本語 fuck テキスト", "’’",
             "x\u00a0\u00a0"]
    for group in (lines, other + lines, lines + other, ["\ud800 shit", *lines]):  # ASCII, other, a lone surrogate
        got = predict_lines("\n".join(g.lower() for g in group), len(group))
        want = np.array([0.0 if not any(c.isalnum() or c == "_" for c in g) else p
                         for g, p in zip(group, package(group))])
        assert got.shape == (len(group),) and np.abs(got - want).max() < 1e-9


def test_the_words_the_readers_see_are_the_documents_words_among_the_cues():
    """hap_words.doc_words (Arrow's split and set lookup for ASCII documents, a regular expression for the others) gives
    each document's [a-z]+ words that some rule, reader or the learned model's selection looks for."""
    from tasks.curate.rules.hap import _cue_words
    from tasks.curate.rules.hap_words import _words_of, doc_words

    cues = _cue_words(HapConfig().words_path)
    docs = ["you are vermin\nblacks are animals", "", "x86_64 you2 _people_ 1jews1", "   ", "straße you jews",
            "naïve\u00a0people’s jews\u2028you", "\ud800 you jews",
            "nothing to see here", "YOU".lower(), "a\n\nthe"]
    got = doc_words(docs, cues)
    assert got == [_words_of(d) & cues for d in docs]
    assert {"you", "vermin", "blacks", "animals"} <= got[0] and {"you", "people", "jews"} <= got[2]
    assert got[docs.index("nothing to see here")] == set() and "see" not in cues

    # three one-letter words in a row: where letters spaced out are looked for (a superset of plain_forms' test)
    from tasks.curate.rules.hap_words import read_words
    from tasks.curate.rules.hap_context import _CLASSES

    texts = ["f u c k you", "a.b.c", "x y", "go f-u-c-k", "i e.g. a b c", "no such thing", "b i t c h", "a b", ""]
    _, spaced = read_words(texts, cues)
    for t, flag in zip(texts, spaced):
        x = t.encode("ascii", "replace").translate(_CLASSES)
        assert flag >= (b" a a a " in x or x.startswith(b"a a a ") or x.endswith(b" a a a")), t
    assert list(spaced) == [True, True, False, True, True, False, True, False, False]
    assert all(hap_scores(["f u c k you", "go f.u.c.k yourself"]) >= HapConfig().threshold)


def test_obfuscated_words_are_read_plainly():
    """Letters written as digits or symbols, spaced out, or masked: the word list and patterns see the plain word;
    versions, hashes and ordinary punctuation are left as they are."""
    from tasks.curate.rules.hap_context import plain_forms

    known = frozenset({"shit", "faggot", "nigger", "fuck", "bitch", "idiot"})
    assert plain_forms("go eat sh!t and d!e you f@ggot", known) == "go eat shit and die you faggot"
    assert plain_forms("k1ll urs3lf while ur at it", known) == "kill urself while ur at it"
    assert plain_forms("f u c k you", known) == "fuck you" and plain_forms("f.u.c.k off", known) == "fuck off"
    assert plain_forms("what the f*ck, n****r", known) == "what the fuck, nigger"
    assert plain_forms("größe sh1t", known) == "größe shit"  # offsets hold past non-ASCII characters
    for clean in ("md5sum x86_64 v1.2 sha256", "idiot! wow!", "e.g. a b", "u.s.a. and i.e.", "b*tree h*ndl", ""):
        assert plain_forms(clean, known) is None
    scores = hap_scores(["go eat sh!t and d!e you f@ggot", "k1ll urs3lf", "Build with -O3 for x86_64 (md5: 9e107d9d)."])
    assert list(scores >= HapConfig().threshold) == [True, True, False]


GROUP_HATE = ["blacks are basically animals, they cant live in a civilised society",
              "Disabled people are a drain on society and a burden on our taxes.",
              "trans ppl are just predators, keep them out of every school",
              "Every time I see a Roma family at the station I hold my wallet. Thieves by nature, all of them."]
REPORTED = ["The court sentenced a man who called Muslims vermin in a series of posts.",
            "Researchers found that claims that immigrants are criminals do not hold up.",
            "Black people and women were denied the vote for decades, historians note.",
            "My Muslim neighbours brought food when we moved in.", "Women's football is growing fast.",
            "Many Mexican families go back to their villages for the holidays.", "Women were not allowed to vote until 1920.",
            "Refugees send money back home every month.", "Music is in their blood: the Roma musicians played all night.",
            "Refugees are not people who chose to leave; they were forced out."]


def test_hate_against_a_group_is_read_from_its_words_unless_reported_or_disputed():
    from tasks.curate.rules.hap_context import _WORD, group_hate

    assert all(hap_scores(GROUP_HATE) >= HapConfig().threshold)
    assert not any(group_hate(_WORD.findall(t.lower()), t.lower()) for t in REPORTED)
    assert all(hap_scores(REPORTED) < HapConfig().threshold)


def test_harassment_of_the_reader_without_swear_words():
    threats = ["I already have your work address and I know your kids' school.", "hope your house burns down with you in it",
               "Nobody would miss you if you were gone.", "Saw you yesterday. Followed you home after.",
               "send me your nudes or I post the ones you sent before"]
    benign = ["I hope you don't crash your car in this weather.", "The technician will show up at your home at 8.",
              "Please post your name and email below.", "Skipping this step will make you regret it.",
              "Always lock your doors and windows.", "It would be a shame if you missed the sale!"]
    scores = hap_scores(threats + benign)
    assert list(scores >= HapConfig().threshold) == [True] * len(threats) + [False] * len(benign)


def test_a_quotation_the_sentence_reports_is_not_said_to_anyone():
    """Court reports, moderation guidelines and victims' accounts quote threats, slurs and insults: in a sentence
    that says the quotation is reported (said, wrote, received, the slur, an example...), what is quoted does not
    score; a quotation with no such word, and abuse outside the quotes, still do."""
    from tasks.curate.rules.hap_context import unquote_reported

    reported = [
        'The jury heard that the accused had written "I know where you live" in a voicemail left the night before.',
        "She read out messages she'd received, including 'nobody will miss you', to show MPs what abuse looks like.",
        'In the leaked chat logs, members of the group used the slur "wetback" and discussed targeting workers.',
        'The moderation guidelines give "go back to where you came from" as an example of an attack on origin.',
        "In her testimony, the witness said her manager called her a “stupid bitch” in front of customers.",
    ]
    said = ['"Go back to your country" is what I tell all of them.', 'You are a "genius", go kill yourself.',
            'He said nothing, so I wrote back: you stupid bitch.',
            # apostrophes are no quotation marks; a quotation of two sentences is one; said to the reader
            "the boys' coach is a fucking cunt and the girls' coach too, such a mess",
            'He wrote "Sorry. I was late." You fucking cunt, that "sorry" he wrote was fake.',
            'my last words to you: "die in a fire, you nigger"', "such 'nigger' behaviour from you"]
    cfg = HapConfig()
    assert all(hap_scores(reported) < cfg.threshold) and all(hap_scores(said) >= cfg.threshold)
    assert unquote_reported('the slur "wetback" was used.\nok "x" here') == 'the slur "" was used.\nok "x" here'
    assert unquote_reported("don't 'fix' it, he said") == "don't '' it, he said"  # apostrophes are no quotes
    assert unquote_reported("no quotes at all") == "no quotes at all"


def test_the_self_trained_model_rejects_alone_only_when_sure_and_given_enough_known_words():
    """The classifier trained from data_contracts/hap/train.jsonl: its fast evaluation gives scikit-learn's
    probabilities; abuse in words no list or pattern holds is rejected at the default threshold when the model is
    past REJECT_AT on a text of enough words it knows; a fragment, or text in a language it never saw, only ranks."""
    import random

    import numpy as np

    from tasks.curate.rules import hap_learned

    m = hap_learned.model()
    texts, labels = hap_learned.training_set()
    rng = random.Random(0)
    sample = [rng.choice(texts) for _ in range(200)] + ["", "you you", "qqkeelunitbreakqq x", "ÜBER straße you're"]
    ascii_only = [t for t in sample if t.isascii()] + ["'quoted' ''' '' don't o'clock 'tis'", "x_y a1 'b'c'", "'"]
    for batch in (sample, ascii_only, ["ÜBER straße"], ["you are qqkeelunitbreakqq vermin é", "x"]):  # mixed,
        # ASCII only (Arrow's tokens), other text only, other text holding the separator word
        assert np.abs(m.predict(batch) - m.clf.predict_proba(m.vectorizer.transform(batch))[:, 1]).max() < 1e-9
    assert len(texts) > 1700 and 0.4 < labels.mean() < 0.6

    cfg = HapConfig()
    p = np.array([0.5, 0.84, 0.86, 0.95, 0.99, 0.95, 0.95])
    distinct = np.array([20, 20, 20, 20, 20, 2, 8])
    share = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.4])  # the last two: a fragment; mostly unknown words
    s = hap_learned.score(p, distinct, share)
    assert list(s >= cfg.threshold) == [False, False, True, True, True, False, False]
    assert s[0] == 0.5 and s[2] < s[3] < s[4] <= 1.0 and max(s[5], s[6]) <= hap_learned.RANK_CAP

    contempt = "Those people breed like rabbits and take every council house going."
    plain = "The library opens at nine and the reading room stays quiet until noon."
    fragment = "no pixels are transparent"
    s_bad, s_good, s_fragment, s_repeated = hap_scores([contempt, plain, fragment, "those people " * 3])
    assert s_bad >= cfg.threshold > hap_learned.RANK_CAP >= max(s_fragment, s_repeated) and s_good < 0.5
    _, distinct, share = m.predict_with_evidence(["those people those people those people", "those people"])
    assert list(distinct) == [2, 2] and list(share) == [1.0, 1.0]  # repeating words adds no evidence


def test_the_group_reader_is_linear_when_the_group_and_the_words_about_it_are_far_apart():
    """Group mentions at one end of a long sentence, degrading words at the other, nothing within the window: every
    mention against every word would be quadratic (one hostile document stalling a partition)."""
    import time

    from tasks.curate.rules.hap_context import group_hate

    def seconds(n: int) -> float:
        words = ["jews"] * n + ["the"] * 20 + ["rats"] * n
        best = float("inf")
        for _ in range(3):
            t0 = time.thread_time()
            assert not group_hate(words, " ".join(words)[:0])
            best = min(best, time.thread_time() - t0)
        return best

    small, large = seconds(2_000), seconds(8_000)
    assert large / max(small, 2e-4) < 6, (small, large)
