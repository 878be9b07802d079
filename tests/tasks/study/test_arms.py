"""The study's arms and conclusions as pure functions: domain shares, the natural mixture, compute matching,
mean ± std across seeds, the best ratio within the general-regression budget, the table and the chart."""
from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from tasks.study import arms
from tasks.study.config import StudyConfig
from tasks.train.config import BaselineConfig, ModelConfig, TrainConfig


@dataclass(frozen=True)
class _Dataset:
    domain: str
    split: str
    num_tokens: int


def test_specialize_settings_put_the_ratio_on_the_domain_and_drop_empty_shares():
    model, spec = ModelConfig(preset="tiny"), TrainConfig(steps=10, mix={"cybersecurity": 0.5, "general": 0.5})
    assert arms.specialize_settings(model, spec, "cybersecurity", 0.25, 3).train.mix == {"cybersecurity": 0.25,
                                                                                         "general": 0.75}
    assert arms.specialize_settings(model, spec, "cybersecurity", 0.0, 3).train.mix == {"general": 1.0}
    assert arms.specialize_settings(model, spec, "cybersecurity", 1.0, 3).train.mix == {"cybersecurity": 1.0}
    assert arms.specialize_settings(model, spec, "cybersecurity", 1.0, 3).seed == 3
    assert [arms.ratio_arm(r) for r in (0, 0.1, 0.25, 1.0)] == ["ratio_000", "ratio_010", "ratio_025", "ratio_100"]


def test_natural_mix_is_each_domains_share_of_the_training_tokens():
    data = [_Dataset("general", "train", 300), _Dataset("cybersecurity", "train", 100),
            _Dataset("cybersecurity", "test", 10_000), _Dataset("legal", "train", 0)]
    assert arms.natural_mix(data) == {"cybersecurity": 0.25, "general": 0.75}
    with pytest.raises(ValueError):
        arms.natural_mix([_Dataset("general", "test", 5)])


def test_natural_baselines_get_the_asked_multiple_of_the_small_models_compute():
    model = ModelConfig(preset="tiny", seq_length=64)
    pre, spec = TrainConfig(steps=40, global_batch_size=8), TrainConfig(steps=20, global_batch_size=8)
    big = BaselineConfig(enabled=True, num_layers=4, hidden_size=256, num_attention_heads=4, global_batch_size=8)
    small_n = model.spec(1024).num_params()
    small_flops = 6 * small_n * arms.small_sequences(pre, spec) * 64
    for multiple in (1.0, 4.0):
        s = arms.natural_settings(model, pre, spec, big, 1024, multiple, {"general": 0.6, "cybersecurity": 0.4}, 9)
        n = s.model.spec(1024).num_params()
        flops = 6 * n * s.train.steps * s.train.global_batch_size * 64
        assert n > 2 * small_n and s.train.mix == {"general": 0.6, "cybersecurity": 0.4} and s.seed == 9
        assert multiple * small_flops <= flops < multiple * small_flops + 6 * n * 8 * 64  # within one step


def _score(arm, seed, dom, gen, params=1_000_000, tokens=10_000, task=0.5):
    return arms.ArmScore(arm=arm, seed=seed, params=params, tokens=tokens, domain_bpb=dom, general_bpb=gen,
                         domain_ppl=2 ** dom, general_ppl=2 ** gen, tasks={"keel_cyber_name": task})


def test_summary_conclusion_table_and_chart(tmp_path):
    scores = [_score("base", 1, 3.0, 2.0), _score("base", 2, 3.2, 2.2),
              _score("ratio_050", 1, 2.0, 2.1), _score("ratio_050", 2, 2.2, 2.3),       # +4.8% general
              _score("ratio_100", 1, 1.5, 2.6), _score("ratio_100", 2, 1.7, 2.8),       # best domain, +28.6%
              _score("natural_4x", 1, 2.5, 1.8, params=5_000_000, tokens=8_000),
              _score("natural_4x", 2, 2.7, 1.9, params=5_000_000, tokens=8_000)]
    summary = arms.summarize(scores)
    by = {s.arm: s for s in summary}
    assert [s.arm for s in summary] == ["base", "ratio_050", "ratio_100", "natural_4x"]
    assert by["base"].mean["domain_bpb"] == pytest.approx(3.1) and by["base"].std["domain_bpb"] == pytest.approx(0.1414, abs=1e-3)
    assert by["natural_4x"].flops == pytest.approx(6 * 5_000_000 * 8_000)
    c = arms.conclude(summary, 0.10)
    assert c["best_ratio"] == "ratio_050" and c["best_within_budget"]  # ratio_100 is better on the domain, over budget
    assert arms.conclude(summary, 0.5)["best_ratio"] == "ratio_100"
    (v,) = c["versus_natural"]
    assert v["specialized_better_on_domain"] and not v["specialized_better_on_general"]
    assert v["compute_ratio"] == pytest.approx(4.0)
    table = arms.table_markdown(summary)
    assert "| ratio_050 | 2 |" in table and "2.100 ± 0.141" in table and "keel_cyber_name" in table
    text = arms.conclusion_text(c, "cybersecurity")
    assert "50% cybersecurity" in text and "beats the 5.0M-parameter natural-mix model" in text
    arms.frontier_chart(summary, str(tmp_path / "f.png"), "cybersecurity")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_study_config_checks():
    assert StudyConfig().check() == []
    assert StudyConfig(ratios=(0.5, 1.5)).check() and StudyConfig(seeds=()).check()
    assert StudyConfig(ratios=(0.5, 0.5)).check() and StudyConfig(compute_multiples=(0,)).check()
    assert replace(StudyConfig(), max_general_regression=-1).check()
