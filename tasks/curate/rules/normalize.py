"""Rule `normalize`: Unicode NFC, control and invisible characters removed (soft hyphens, zero-width and bidi
controls: tasks/curate/text.py), whitespace collapsed; empty results rejected."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tasks.curate.step import StepResult, result
from tasks.curate.text import normalize_text


@dataclass(frozen=True)
class NormalizeConfig:
    """No settings yet: normalisation is fixed (NFC, controls, whitespace)."""


def normalize(df: pd.DataFrame, cfg: NormalizeConfig) -> StepResult:
    df = df.assign(text=[normalize_text(t) for t in df["text"]])
    return result(df, [None if t else "empty_after_normalization" for t in df["text"]])
