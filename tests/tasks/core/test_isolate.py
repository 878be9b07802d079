"""Forked children: the parent's objects stay out of the child's garbage collections (a collection touching them
would copy every page they sit on), and the parent's own collections are as before."""
import gc

from tasks.core.isolate import in_child


def _frozen() -> int:
    return gc.get_freeze_count()


def test_the_child_does_not_collect_the_parents_objects_and_the_parent_still_does():
    kept = [[i] for i in range(10_000)]  # parent objects the child would otherwise traverse
    assert in_child(_frozen) >= len(kept)
    assert gc.get_freeze_count() == 0
