"""Recipe section [sources]: which sources a run reads and where their files are."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourcesConfig:
    ids: tuple[str, ...] = ()
    """Source ids to ingest; each needs <manifests>/<id>.toml with a legal review."""
    manifests: str = "data_contracts/sources"
    """Folder of source manifests."""
    data_root: str = ".keel/corpus"
    """Base for relative data URIs in manifests; relative URIs may not escape it."""
    max_doc_bytes: int = 5_000_000
    """Documents larger than this are quarantined at ingest (reason 'oversized')."""

    def check(self) -> list[str]:
        problems = []
        if not self.ids:
            problems.append("[sources].ids is empty: name at least one source from data_contracts/sources/, "
                            'e.g. ids = ["shakespeare"]')
        if len(set(self.ids)) != len(self.ids):
            problems.append(f"[sources].ids lists a source twice: {list(self.ids)}")
        if self.max_doc_bytes <= 0:
            problems.append("[sources].max_doc_bytes must be positive")
        return problems
