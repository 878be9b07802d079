"""Curate stage: partition-local rules (one file each under rules/), then exact and near dedup across the corpus."""
