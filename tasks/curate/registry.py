"""The partition-local curation rules by name, and the config each one reads. `[curate].steps` chooses and orders
them; exact and near dedup run after them, across the whole corpus (tasks/curate/dedup.py)."""
from __future__ import annotations

from typing import Any, Callable

from tasks.curate.dedup import STEPS
from tasks.curate.rules.c4_quality import c4_quality
from tasks.curate.rules.fineweb_quality import fineweb_quality
from tasks.curate.rules.gopher_quality import gopher_quality
from tasks.curate.rules.gopher_repetition import gopher_repetition
from tasks.curate.rules.hap import hap
from tasks.curate.rules.language import language
from tasks.curate.rules.legal_policy import legal_policy
from tasks.curate.rules.normalize import normalize
from tasks.curate.rules.pii import pii_redact

# name -> (rule, where its config comes from: a [curate.<name>] table, or the legal stage's document policy)
RULES: dict[str, tuple[Callable[..., Any], str]] = {
    "normalize": (normalize, "normalize"),
    "legal_policy": (legal_policy, "policy"),
    "language": (language, "language"),
    "gopher_quality": (gopher_quality, "gopher_quality"),
    "gopher_repetition": (gopher_repetition, "gopher_repetition"),
    "fineweb_quality": (fineweb_quality, "fineweb_quality"),
    "c4_quality": (c4_quality, "c4_quality"),
    "hap": (hap, "hap"),
    "pii": (pii_redact, "pii"),
}
GLOBAL_STEPS = STEPS
