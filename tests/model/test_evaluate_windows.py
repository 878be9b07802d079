"""Held-out windows are shared evenly between a group's sources (what a small one cannot fill goes to the others)
and drawn, seeded, from anywhere in each source, not from its first documents."""
import numpy as np
import torch

from model.evaluate import _windows, token_stream


def _dataset(path, n_tokens: int, value: int) -> str:
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    b = IndexedDatasetBuilder(f"{path}.bin", dtype=np.uint16)
    for start in range(0, n_tokens, 100):  # token ids count up, so a window tells where it came from
        ids = (np.arange(start, min(start + 100, n_tokens)) % 60000).astype(np.int64)
        b.add_document(torch.from_numpy(ids), [len(ids)])
    b.finalize(f"{path}.idx")
    return str(path)


def test_windows_are_stratified_by_source_and_spread_over_each(tmp_path):
    big = _dataset(tmp_path / "mitre_attack_test", 20_000, 1)
    small = _dataset(tmp_path / "mitre_cwe_test", 330, 2)  # room for 2 windows of 128 (+1)
    got = _windows([big, small], 128, 20, seed=3)
    assert {p: len(w) for p, w in got.items()} == {big: 18, small: 2}
    starts = [int(w[0]) for w in got[big]]
    assert max(starts) > 10_000 and len(set(starts)) == 18  # not the first windows only
    again = _windows([big, small], 128, 20, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(got[big], again[big]))
    other = _windows([big, small], 128, 20, seed=4)
    assert [int(w[0]) for w in other[big]] != starts
    even = _windows([big, _dataset(tmp_path / "python_docs_test", 20_000, 3)], 128, 20, seed=3)
    assert sorted(len(w) for w in even.values()) == [10, 10]


def test_the_held_out_split_is_memory_mapped_not_loaded(tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    prefix = _dataset(tmp_path / "shakespeare_test", 5_050, 1)
    stream = token_stream(prefix)
    ds = IndexedDataset(prefix)
    assert isinstance(stream, np.memmap)
    assert np.array_equal(stream, np.concatenate([ds[i] for i in range(len(ds))]))
    assert len(token_stream(_dataset(tmp_path / "empty_test", 0, 1))) == 0
