"""Curation rules, one per file: each a pure function `rule(batch, cfg) -> StepResult` over a pandas batch of
documents, with its own small frozen config holding only the fields it reads (tasks/curate/registry.py lists them)."""
