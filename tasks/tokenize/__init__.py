"""Tokenize stage: a byte-level BPE, megatron-core indexed datasets per source and split, the provenance ledger."""
