"""The right to be forgotten: record an opt-out (source, document, domain or URL pattern) in the opt-out file that
the legal stage merges into the document policy, and taint the registered versions that saw the data."""
from __future__ import annotations

import tomllib
from pathlib import Path


def taint(tracking_uri: str, versions: list[dict], reason: str) -> None:
    from tasks.track.tracking import set_version_tags

    for v in versions:
        set_version_tags(tracking_uri, v["model"], v["version"], {"keel.tainted": "true", "keel.tainted_reason": reason[:500]})


def add_optout(path: str | Path, kind: str, value: str) -> bool:
    """Append an opt-out (kind: sources | doc_ids | domains | url_patterns) to the opt-out file; True if new."""
    path = Path(path)
    data = tomllib.loads(path.read_text()) if path.is_file() else {}
    entries = {k: list(data.get("optout", {}).get(k, [])) for k in ("sources", "doc_ids", "domains", "url_patterns")}
    if value in entries[kind]:
        return False
    entries[kind].append(value)
    lines = ["# Opt-outs recorded by `keel forget` (merged into the policy's [optout]).", "[optout]"]
    for k, vals in entries.items():
        lines.append(f"{k} = [" + ", ".join(f'"{x}"' for x in vals) + "]")
    path.write_text("\n".join(lines) + "\n")
    return True
