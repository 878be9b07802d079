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
