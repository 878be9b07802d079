"""megatron-core's blended dataset realizes the recipe's mix within 1% (0.5/0.5 and 0.3/0.7), measured on the
dataset the training job builds, and the planner/realized accounting agrees with it."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from model.job import TrainOutput
from tasks.tokenize.stage import Dataset
from tasks.train.mix import normalize_mix, realized, shares, specialization_domain

SCRIPT = """
import json, sys, torch
from model.gpt import init_distributed
from model.data import ShardTokenizer, build_blended, realized_mix
init_distributed(1, 1, 0)
prefixes, weights, n = json.loads(sys.argv[1])
ds = build_blended(prefixes, weights, n, 32, ShardTokenizer(256, 0, "t"), 1, sys.argv[2])
print(json.dumps(realized_mix(ds, prefixes, n)))
"""


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    d = tmp_path_factory.mktemp("mix")
    rng = np.random.default_rng(1)
    out = []
    for name, domain, docs in (("general", "general", 400), ("cyber", "cybersecurity", 60)):
        b = IndexedDatasetBuilder(str(d / f"{name}.bin"), dtype=np.uint16)
        tokens = 0
        for _ in range(docs):
            ids = np.append(rng.integers(1, 200, rng.integers(20, 120)), 0).astype(np.int64)
            b.add_document(torch.from_numpy(ids), [len(ids)])
            tokens += len(ids)
        b.finalize(str(d / f"{name}.idx"))
        out.append(Dataset(source_id=name, domain=domain, license="MIT", split="train", prefix=str(d / name),
                           num_docs=docs, num_tokens=tokens, num_words=tokens, max_token_id=200))
    return tuple(out)


@pytest.mark.parametrize("cyber", [0.5, 0.3])
def test_realized_mix_within_one_percent(tmp_path, datasets, cyber):
    plan = shares(datasets, {"cybersecurity": cyber, "general": 1 - cyber})
    prefixes, weights = [s.dataset.prefix for s in plan], [s.weight for s in plan]
    n = 2000
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps([prefixes, weights, n]), str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    per_prefix = json.loads(proc.stdout.strip().splitlines()[-1])
    out = TrainOutput(final_loss=0.0, steps=1, checkpoint=None, samples_per_prefix=per_prefix, tokens_per_sample=33,
                      num_params=1, resumed_from=None, world_size=1)
    mix = realized(out, plan, {p: p for p in prefixes})
    assert mix.samples == n
    assert abs(mix.domain_share["cybersecurity"] - cyber) < 0.01
    cyber_src = mix.sources["cyber"]
    assert cyber_src.epochs == pytest.approx(cyber_src.tokens / datasets[1].num_tokens)
    assert cyber_src.epochs > 1  # the small domain corpus repeats: logged, not hidden


def test_shares_split_a_domain_by_tokens(datasets):
    two = datasets + (Dataset("cyber2", "cybersecurity", "MIT", "train", "p2", 1, datasets[1].num_tokens, 1, 1),)
    w = {s.dataset.source_id: s.weight for s in shares(two, {"cybersecurity": 1, "general": 3})}
    assert w == pytest.approx({"general": 0.75, "cyber": 0.125, "cyber2": 0.125})
    assert sum(w.values()) == pytest.approx(1.0)


def test_mix_naming_a_missing_domain_is_a_clear_error(datasets):
    with pytest.raises(ValueError, match="no train data has it"):
        shares(datasets, {"finance": 0.5, "general": 0.5})


def test_normalize_mix_and_specialization_domain():
    assert normalize_mix({"general": 3, "cyber": 1, "legal": 0}) == {"cyber": 0.25, "general": 0.75}
    assert specialization_domain({"general": 0.5, "cyber": 0.5}) == "cyber"
    for bad in ({"general": 1.0}, {"a": 0.5, "b": 0.5}):
        with pytest.raises(ValueError, match="exactly one domain"):
            specialization_domain(bad)
