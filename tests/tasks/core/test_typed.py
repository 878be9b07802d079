"""Typed results round-trip through JSON; data of the wrong shape is refused naming where."""
from dataclasses import dataclass

import pytest

from tasks.core.stage import Counts
from tasks.core.typed import ShapeError, dump, load


@dataclass(frozen=True)
class Inner:
    name: str
    share: float


@dataclass(frozen=True)
class Outer:
    items: tuple[Inner, ...]
    by_name: dict[str, Inner]
    maybe: int | None
    counts: Counts
    note: str = "default"


def test_round_trip_keeps_types():
    value = Outer(items=(Inner("a", 0.5), Inner("b", 1)), by_name={"x": Inner("x", 0.25)}, maybe=None,
                  counts=Counts(3, 2, 1))
    back = load(Outer, dump(value))
    assert back == value and isinstance(back.items, tuple) and isinstance(back.items[1].share, float)
    assert load(Outer, {**dump(value), "maybe": 4}).maybe == 4
    assert "note" not in {k for k, v in dump(value).items() if v is None}


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d["items"][0].update(share="high"), r"Outer.items\[0\].share: expected a number"),
    (lambda d: d.pop("counts"), "missing field 'counts'"),
    (lambda d: d.update(extra=1), r"unknown field\(s\) \['extra'\]"),
    (lambda d: d.update(maybe="x"), "Outer.maybe"),
    (lambda d: d["counts"].update(received=True), r"Outer.counts.received: expected an integer"),
])
def test_wrong_shapes_are_refused_with_their_path(mutate, where):
    data = dump(Outer(items=(Inner("a", 0.5),), by_name={}, maybe=1, counts=Counts(1, 1, 0)))
    mutate(data)
    with pytest.raises(ShapeError, match=where):
        load(Outer, data)


def test_counts_are_conserved_by_construction():
    with pytest.raises(AssertionError, match="conservation"):
        Counts(5, 3, 1)
    assert Counts.passed(4).row() == {"in": 4, "kept": 4, "rejected": 0}
