"""Megatron-core datasets for training: the blended GPT dataset over indexed (.bin/.idx) shards."""
from __future__ import annotations

from collections import Counter

import numpy as np


class ShardTokenizer:
    """The few tokenizer attributes megatron-core's GPTDataset needs (ids only; text lives in tokenizer.json)."""

    def __init__(self, vocab_size: int, eod: int, identity: str):
        self.vocab_size = vocab_size
        self.eod = eod
        self.pad = eod
        self.unique_identifiers = {"class": "ShardTokenizer", "identity": identity}
        self.unique_description = str(self.unique_identifiers)


def build_blended(prefixes: list[str], weights: list[float], num_samples: int, seq_length: int,
                  tokenizer: ShardTokenizer, seed: int, cache_dir: str):
    """Training split of a BlendedMegatronDatasetBuilder over `prefixes` with `weights` (sums to 1)."""
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    config = GPTDatasetConfig(
        random_seed=seed,
        sequence_length=seq_length,
        blend=(list(prefixes), list(weights)),
        split="100,0,0",
        path_to_cache=cache_dir,
        tokenizer=tokenizer,
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        create_attention_mask=False,
        mid_level_dataset_surplus=0.005,
    )
    train, _, _ = BlendedMegatronDatasetBuilder(GPTDataset, [num_samples, 0, 0], lambda: True, config).build()
    return train


def realized_mix(dataset, prefixes: list[str], num_samples: int) -> dict[str, int]:
    """Samples drawn from each prefix among the first `num_samples` of a (possibly blended) dataset."""
    index = getattr(dataset, "dataset_index", None)
    if index is None:  # a single dataset, not blended
        return {prefixes[0]: num_samples}
    counts = Counter(np.asarray(index[:num_samples]).tolist())
    return {prefixes[i]: int(counts.get(i, 0)) for i in range(len(prefixes))}
