"""What a curation rule returns: the (possibly rewritten) batch, a keep mask, a reason per dropped row and the
signal columns to add. Batching, rejects, timing and conservation live once, in tasks/curate/stage.py."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class StepResult:
    frame: pd.DataFrame
    keep: np.ndarray
    reasons: np.ndarray
    signals: dict[str, np.ndarray] = field(default_factory=dict)


def result(df: pd.DataFrame, reasons: list, signals: dict | None = None) -> StepResult:
    """A StepResult from one reason per row (None keeps the row)."""
    r = np.array(reasons, dtype=object)
    return StepResult(df, np.array([x is None for x in reasons], dtype=bool), r, signals or {})
