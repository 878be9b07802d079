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
                          "Go back to your country.", "Kill all the refugees."]
NOT_ABUSE = ["Kill the child process with SIGKILL if it does not exit.", "The attacker can exploit the buffer overflow.",
             "Muslims around the world celebrate Eid al-Fitr.", "Immigrants contributed to the growth of the city.",
             "Through a chink in the wall they whispered.", "The idiot test checks nothing.",
             "Pigs are intelligent animals.", "Go back to the previous page.", "I will find you a better solution.",
             "Ban the IP address after five failed logins.", "You had a bastard file format to parse."]


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
