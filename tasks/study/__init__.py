"""The specialization study: continued pretraining at several domain shares against larger natural-mix models."""
