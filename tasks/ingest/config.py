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
    extra_roots: tuple[str, ...] = ()
    """More local folders that absolute data URIs of manifests may point into (e.g. /usr/share/vim for a source
    shipped by a system package); anywhere else is refused."""
    max_doc_bytes: int = 5_000_000
    """Documents larger than this are quarantined at ingest (reason 'oversized')."""
    max_line_bytes: int = 0
    """JSONL lines longer than this are skipped to their end ('line_too_long'); 0: 8 x max_doc_bytes + 1 MiB."""
    max_inflate_ratio: float = 1000.0
    """A compressed file inflating more than this (after 64 MiB) is a decompression bomb: its records so far are
    kept, the rest rejected ('decompression_bomb')."""
    max_decompressed_bytes: int = 1 << 40
    """Decompressed bytes read from any one file at most."""
    max_quarantined_share: float = 0.01
    """Files that kill their worker twice are quarantined (`worker_killed`); above this share the run fails."""

    def limits(self):
        from tasks.ingest.readers import Limits

        return Limits(max_doc_bytes=self.max_doc_bytes, max_line_bytes=self.max_line_bytes,
                      max_inflate_ratio=self.max_inflate_ratio, max_decompressed_bytes=self.max_decompressed_bytes)

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
