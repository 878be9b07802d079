"""Evaluate stage: held-out perplexity per domain, HF export parity, scored generations, the promotion gate."""
