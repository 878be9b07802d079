"""Recipe section [tokenize]: the tokenizer and the held-out splits."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenizeConfig:
    vocab_size: int = 8192
    """Byte-level BPE vocabulary size (including special tokens)."""
    tokenizer_path: str = ""
    """Load this tokenizer.json instead of training one."""
    sample_bytes: int = 20_000_000
    """At most this much curated text (sampled deterministically) trains the tokenizer."""
    valid_per_mille: int = 20
    """Documents whose hash falls in the first N per mille go to the valid split."""
    test_per_mille: int = 20
    """The next N per mille go to the test split."""
    eval_task_items: int = 100
    """Items per downstream task built from the test split (tasks/evaluate/downstream.py)."""
    decontaminate: bool = True
    """Reject training documents that share an n-gram of words with an evaluation item (`eval_contamination:<task>`)."""
    decontaminate_ngram: int = 13
    """Words per n-gram of the overlap check."""
    decontaminate_max_doc_frequency: int = 10
    """An n-gram found in more training documents than this is common phrasing or boilerplate, not a leak."""

    def check(self) -> list[str]:
        problems = []
        if self.valid_per_mille < 0 or self.test_per_mille < 0 or self.valid_per_mille + self.test_per_mille >= 1000:
            problems.append("[tokenize] valid_per_mille + test_per_mille must be between 0 and 999")
        if self.eval_task_items < 1:
            problems.append("[tokenize].eval_task_items must be at least 1")
        if self.decontaminate_ngram < 5:
            problems.append(f"[tokenize].decontaminate_ngram = {self.decontaminate_ngram}: n-grams under 5 words match "
                            "ordinary phrases; use 8-13")
        if self.decontaminate_max_doc_frequency < 1:
            problems.append("[tokenize].decontaminate_max_doc_frequency must be at least 1")
        if self.test_per_mille == 0:
            problems.append("[tokenize].test_per_mille is 0: evaluation needs a test split; use e.g. 20")
        if not self.tokenizer_path and not 256 < self.vocab_size <= 1_000_000:
            problems.append(f"[tokenize].vocab_size = {self.vocab_size}: a byte-level BPE needs more than 256 tokens")
        if self.tokenizer_path and "://" not in self.tokenizer_path:
            from pathlib import Path

            if not Path(self.tokenizer_path).is_file():
                problems.append(f"[tokenize].tokenizer_path: {self.tokenizer_path} not found")
        return problems
