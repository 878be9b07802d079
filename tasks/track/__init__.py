"""Tracking and registration: MLflow runs per stage (tracking.py) and the register stage (register.py)."""
