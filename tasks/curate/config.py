"""Recipe section [curate]: which rules run, in what order, and one sub-table per rule with the fields it reads.

    [curate]
    steps = ["normalize", "legal_policy", "language", "gopher_quality", ...]
    [curate.language]
    min_score = 0.3
    [curate.gopher_quality]
    min_words = 20
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from tasks.curate.rules.c4_quality import C4QualityConfig
from tasks.curate.rules.fineweb_quality import FineWebQualityConfig
from tasks.curate.rules.gopher_quality import GopherQualityConfig
from tasks.curate.rules.gopher_repetition import GopherRepetitionConfig
from tasks.curate.rules.hap import HapConfig
from tasks.curate.rules.language import LanguageConfig
from tasks.curate.rules.normalize import NormalizeConfig
from tasks.curate.rules.pii import PiiConfig

DEFAULT_STEPS = ("normalize", "legal_policy", "language", "gopher_quality", "gopher_repetition", "fineweb_quality",
                 "hap", "pii")


# Keys of the flat [curate] table of earlier recipes, and where each lives now (still read, with a warning).
MOVED = {"languages": "language.languages", "min_lang_score": "language.min_score",
         "hap_threshold": "hap.threshold", "c4_min_sentences": "c4_quality.min_sentences",
         "fineweb_line_punct_thr": "fineweb_quality.line_punct_thr",
         "fineweb_short_line_thr": "fineweb_quality.short_line_thr",
         "fineweb_char_dup_ratio": "fineweb_quality.char_dup_ratio",
         "fineweb_new_line_ratio": "fineweb_quality.new_line_ratio", "near_dedup": "dedup.near",
         "exact_dedup": "dedup.exact", "minhash_ngram": "dedup.ngram", "minhash_bands": "dedup.bands",
         "minhash_rows": "dedup.rows", "min_words": "gopher_quality.min_words", "max_words": "gopher_quality.max_words",
         "min_avg_word_length": "gopher_quality.min_avg_word_length",
         "max_avg_word_length": "gopher_quality.max_avg_word_length",
         "max_symbol_word_ratio": "gopher_quality.max_symbol_word_ratio",
         "min_alpha_word_fraction": "gopher_quality.min_alpha_word_fraction",
         "max_duplicate_line_fraction": "gopher_repetition.max_duplicate_line_fraction",
         "max_duplicate_paragraph_fraction": "gopher_repetition.max_duplicate_paragraph_fraction"}


@dataclass(frozen=True)
class DedupConfig:
    exact: bool = True
    """Drop documents whose normalised text equals another's (the smallest doc_id survives)."""
    near: bool = True
    """MinHash near-duplicate removal across all shards and sources (one survivor per cluster)."""
    ngram: int = 5
    """Word n-gram size of MinHash shingles."""
    bands: int = 14
    """LSH bands (FineWeb: 14 bands x 8 rows, ~0.75 Jaccard threshold)."""
    rows: int = 8
    """Rows (hashes) per LSH band."""
    shards: int = 0
    """Shards the dedup keys are shuffled into (each one a task on the cluster); 0: sized by the documents that
    reach dedup, one shard per `rows_per_shard` of them (at least one, at most one per partition)."""
    rows_per_shard: int = 100_000
    """Documents per shard when `shards` is 0: a shard then holds about 1.4 million band keys (14 bands), ~100 MB
    in a worker. Every shard is a task in each of the shuffle's rounds and a file from every partition, so a small
    run in many shards pays per-task costs for nothing."""


@dataclass(frozen=True)
class CurateConfig:
    steps: tuple[str, ...] = DEFAULT_STEPS
    """Partition-local rules in order (tasks/curate/registry.py); exact and near dedup run after them, globally."""
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    """[curate.normalize]"""
    language: LanguageConfig = field(default_factory=LanguageConfig)
    """[curate.language]: languages, min_score."""
    gopher_quality: GopherQualityConfig = field(default_factory=GopherQualityConfig)
    """[curate.gopher_quality]: min_words, max_words, word length, symbols, alphabetic words."""
    gopher_repetition: GopherRepetitionConfig = field(default_factory=GopherRepetitionConfig)
    """[curate.gopher_repetition]: duplicate line / paragraph fractions."""
    fineweb_quality: FineWebQualityConfig = field(default_factory=FineWebQualityConfig)
    """[curate.fineweb_quality]: line punctuation, short lines, duplicated characters, list ratio."""
    c4_quality: C4QualityConfig = field(default_factory=C4QualityConfig)
    """[curate.c4_quality]: min_sentences."""
    hap: HapConfig = field(default_factory=HapConfig)
    """[curate.hap]: threshold, words."""
    pii: PiiConfig = field(default_factory=PiiConfig)
    """[curate.pii]"""
    dedup: DedupConfig = field(default_factory=DedupConfig)
    """[curate.dedup]: exact, near, ngram, bands, rows."""
    doc_time_budget_s: float = 10.0
    """Time one rule may spend on one document; a document that overruns is rejected `rule_timeout:<rule>`
    (a backstop: every rule is linear-time). 0 disables the budget."""
    isolate: bool = True
    """Run each partition's rules in a child process: a partition that kills it twice (out of memory, a crash in a
    native library) is quarantined (`worker_killed`) instead of failing the run."""
    max_quarantined_share: float = 0.01
    """Fail the stage when more than this share of the documents was quarantined."""
    MOVED: ClassVar[dict[str, str]] = MOVED

    def check(self) -> list[str]:
        from tasks.curate.registry import RULES

        problems = [f"[curate].steps: unknown rule {s!r}; known: {sorted(RULES)}" for s in self.steps if s not in RULES]
        if len(set(self.steps)) != len(self.steps):
            problems.append(f"[curate].steps lists a rule twice: {list(self.steps)}")
        if self.dedup.near and (self.dedup.bands < 1 or self.dedup.rows < 1 or self.dedup.ngram < 1):
            problems.append("[curate.dedup]: bands, rows and ngram must be at least 1")
        if self.dedup.shards < 0 or self.dedup.rows_per_shard < 1:
            problems.append("[curate.dedup]: shards must be 0 (sized by rows_per_shard) or more, rows_per_shard at "
                            "least 1")
        if not 0 < self.hap.threshold <= 1:
            problems.append("[curate.hap].threshold must be in (0, 1]")
        return problems + self.language.problems()

