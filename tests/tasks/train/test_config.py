"""The training sections: the architecture a [model] section resolves to, the baseline merge, launcher fields."""
import pytest

from model.presets import PRESETS, pad_vocab
from tasks.train.config import BaselineConfig, ModelConfig, TrainConfig, baseline_settings


def test_model_spec_is_the_preset_with_overrides():
    spec = ModelConfig(preset="small", num_layers=6, seq_length=256).spec(4000)
    assert (spec.num_layers, spec.hidden_size, spec.num_attention_heads) == (6, PRESETS["small"].hidden_size, 4)
    assert spec.seq_length == 256 and spec.vocab_size == pad_vocab(4000) == 4096
    assert ModelConfig(preset="125m").spec(10).hidden_size == 768


def test_baseline_merge_takes_baseline_sizes_and_schedule_over_pretrain():
    model = ModelConfig(preset="small", num_layers=3, bf16=False)
    pre = TrainConfig(steps=10, global_batch_size=16, micro_batch_size=8, nproc=2, save_interval=4,
                      mix={"general": 1.0})
    spe = TrainConfig(steps=5, global_batch_size=8, mix={"cyber": 0.5, "general": 0.5})
    b = baseline_settings(model, pre, spe, BaselineConfig(enabled=True, preset="tiny", hidden_size=96,
                                                          global_batch_size=12, micro_batch_size=6, lr=1e-3), seed=5)
    assert b.model.preset == "tiny" and b.model.num_layers == 0 and b.model.hidden_size == 96
    assert b.model.bf16 is False  # the rest of [model] carries over
    assert b.train.steps == 17  # ceil((10 * 16 + 5 * 8) / 12)
    assert (b.train.global_batch_size, b.train.micro_batch_size, b.train.lr) == (12, 6, 1e-3)
    assert b.train.mix == {"general": 1.0} and b.train.nproc == 2 and b.train.save_interval == 4
    assert b.seed == 5


@pytest.mark.parametrize("timeout_s, expected", [(3600, "0-01:00:00"), (10 * 86400, "10-00:00:00"), (61, "0-00:02:00")])
def test_slurm_time_limit_follows_the_timeout(timeout_s, expected):
    assert TrainConfig(timeout_s=timeout_s).slurm_time_limit == expected
    assert TrainConfig(timeout_s=timeout_s, time_limit="3:00:00").slurm_time_limit == "3:00:00"


@pytest.mark.parametrize("field, value, ok", [
    ("image", "ghcr.io/org/keel:1.2", True), ("image", "keel@sha256:" + "a" * 64, True),
    ("image", "keel:1\nspec: x", False), ("image", "Keel Image", False),
    ("partition", "gpu-a100", True), ("partition", "gpu;rm -rf /", False),
    ("account", "proj_42", True), ("account", "x\n#SBATCH --x", False),
    ("time_limit", "2-00:00:00", True), ("time_limit", "90", True), ("time_limit", "1 day", False),
])
def test_launcher_fields_match_strict_patterns(field, value, ok):
    problems = TrainConfig(**{field: value}).check("[pretrain]")
    assert (not problems) is ok, problems
