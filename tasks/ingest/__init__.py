"""Ingest stage: approved sources' raw files -> Parquet document partitions with provenance, rejects quarantined."""
