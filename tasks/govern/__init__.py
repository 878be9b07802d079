"""Governance: the legal stage, data contracts, lineage and the right to be forgotten."""
