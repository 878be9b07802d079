"""Promotion gate decisions on constructed metric sets, and the tokens each compared model saw."""
import pytest

from model.job import GroupScore
from tasks.evaluate.gate import gate
from tasks.evaluate.report import comparison_rows, tokens_seen


def _groups(domain_ppl, general_ppl):
    score = lambda ppl: GroupScore(loss=None, ppl=ppl, bpb=None, tokens=1, sequences=1)  # noqa: E731
    return {"cybersecurity": score(domain_ppl), "general": score(general_ppl)}


BASE = _groups(100.0, 50.0)


@pytest.mark.parametrize("special, kwargs, promote, why", [
    (_groups(80.0, 52.0), {}, True, None),
    (_groups(99.0, 50.0), {"min_domain_improvement": 0.05}, False, "domain ppl gain 0.010 < required 0.05"),
    (_groups(80.0, 70.0), {"max_general_regression": 0.2}, False, "general ppl regression 0.400 > allowed 0.2"),
    (_groups(80.0, 50.0), {"data_ok": False}, False, "data did not pass"),
    (_groups(80.0, 50.0), {"hap_rate": 0.5, "max_hap_rate": 0.1}, False, "HAP rate 0.500 of generations > ceiling 0.1"),
    (_groups(120.0, 50.0), {}, False, "domain ppl gain -0.200 < required 0.0"),
])
def test_gate(special, kwargs, promote, why):
    args = {"min_domain_improvement": 0.0, "max_general_regression": 0.1, "data_ok": True} | kwargs
    d = gate(BASE, special, "cybersecurity", **args)
    assert d.promote is promote
    assert (why is None and not d.reasons) or any(why in r for r in d.reasons)
    assert d.domain_ppl_gain == pytest.approx((100 - special["cybersecurity"].ppl) / 100)
    assert d.base_general_ppl == 50.0 and d.special_domain_ppl == special["cybersecurity"].ppl


def test_tokens_seen_adds_what_a_model_continued_from():
    own = {"base": 1000, "specialized": 300, "baseline": 1300}
    assert tokens_seen(own, {"specialized": "base"}) == {"base": 1000, "specialized": 1300, "baseline": 1300}
    assert tokens_seen({"a": 1, "b": 2, "c": 4}, {"c": "b", "b": "a"}) == {"a": 1, "b": 3, "c": 7}


def test_comparison_rows_use_six_n_d():
    rows = comparison_rows({"base": BASE}, {"base": 10}, {"base": 7}, "cybersecurity")
    assert rows[0].flops == 6 * 10 * 7 and rows[0].domain_ppl == 100.0 and rows[0].general_ppl == 50.0


def _champion(domain_ppl, general_ppl, tokenize="t1"):
    return {"version": "3", "tags": {"keel.eval.special_domain_ppl": str(domain_ppl),
                                     "keel.eval.special_general_ppl": str(general_ppl),
                                     "keel.stage_hash.tokenize": tokenize}}


@pytest.mark.parametrize("special, champion, held_out, promote, why", [
    (_groups(80.0, 52.0), None, "t1", True, "first version of the model"),
    (_groups(120.0, 50.0), None, "t1", False, "domain ppl gain -0.200"),
    (_groups(70.0, 51.0), _champion(80.0, 50.0), "t1", True, "beats champion version 3"),
    (_groups(79.9, 50.0), _champion(80.0, 50.0), "t1", False, "gain 0.001 < required 0.01"),  # better base, not champion
    (_groups(60.0, 58.0), _champion(80.0, 50.0), "t1", False, "regression 0.160 > allowed 0.1"),
    (_groups(60.0, 50.0), _champion(80.0, 50.0, tokenize="t0"), "t1", False, "other held-out data"),
    (_groups(120.0, 50.0), _champion(200.0, 50.0), "t1", False, "fails its own gate"),
    (_groups(60.0, 50.0), {"version": "3", "tags": {}}, "t1", False, "no evaluation figures"),
    (_groups(90.0, 50.0), {"version": "3", "tags": {**_champion(80.0, 50.0)["tags"], "keel.tainted": "true"}}, "t1",
     True, "is tainted"),
])
def test_champion_challenger(special, champion, held_out, promote, why):
    from tasks.evaluate.gate import challenge

    candidate = gate(BASE, special, "cybersecurity", 0.0, 0.1, data_ok=True)
    d = challenge(candidate, champion, held_out, min_gain_over_champion=0.01, max_general_regression=0.1)
    assert d.promote is promote and any(why in r for r in d.reasons), d.reasons
    assert d.champion_version == (champion["version"] if champion and "keel.tainted" not in champion["tags"] else None)


def _tasks(**accs):
    from model.job import TaskScore

    return {n: TaskScore(acc=a, acc_stderr=se, items=100) for n, (a, se) in accs.items()}


@pytest.mark.parametrize("special_tasks, promote, why", [
    (_tasks(cyber=(0.60, 0.02), general=(0.50, 0.02)), True, None),
    # a drop beyond the margin and beyond two standard errors
    (_tasks(cyber=(0.60, 0.02), general=(0.35, 0.02)), False, "general accuracy 0.350 vs base 0.500"),
    # a drop beyond the margin but within the noise of 30-item task sets
    (_tasks(cyber=(0.60, 0.09), general=(0.42, 0.09)), True, None),
])
def test_gate_downstream_tasks(special_tasks, promote, why):
    base_tasks = _tasks(cyber=(0.55, 0.02), general=(0.50, 0.02))
    d = gate(BASE, _groups(80.0, 50.0), "cybersecurity", 0.0, 0.1, True, base_tasks=base_tasks,
             special_tasks=special_tasks, max_task_regression=0.05)
    assert d.promote is promote
    assert (why is None and not d.reasons) or any(why in r for r in d.reasons)
    assert d.special_tasks == special_tasks and d.base_tasks == base_tasks


def test_champion_challenger_downstream_tasks():
    """A candidate better on perplexity but clearly worse than the champion on a downstream task stays challenger;
    the champion's scores are read back from its registry tags."""
    from tasks.evaluate.gate import challenge, champion_tasks, task_tags

    champ_tasks = _tasks(cyber=(0.70, 0.02), general=(0.50, 0.02))
    assert champion_tasks(task_tags(champ_tasks)) == champ_tasks
    tags = {"keel.eval.special_domain_ppl": "90", "keel.eval.special_general_ppl": "50",
            "keel.stage_hash.tokenize": "h", **task_tags(champ_tasks)}
    champion = {"version": "1", "tags": tags}
    for cand_tasks, promote in ((_tasks(cyber=(0.52, 0.02), general=(0.50, 0.02)), False),
                                (_tasks(cyber=(0.71, 0.02), general=(0.49, 0.02)), True)):
        candidate = gate(BASE, _groups(80.0, 50.0), "cybersecurity", 0.0, 0.1, True, special_tasks=cand_tasks)
        d = challenge(candidate, champion, "h", min_gain_over_champion=0.01, max_general_regression=0.1,
                      max_task_regression=0.05)
        assert d.promote is promote, d.reasons
        if not promote:
            assert any("cyber accuracy 0.520 vs champion version 1 0.700" in r for r in d.reasons)
