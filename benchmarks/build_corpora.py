"""Held-out evaluation corpora of different kinds, built from text already on the machine (Debian packages and
installed Python packages), never the demo corpus:

    python benchmarks/build_corpora.py [--out .keel/bench_corpora] [--per-kind 600]

kinds: man_en (English man pages rendered by groff), man_translated (non-English man pages), changelogs (Debian
changelogs), legal (Debian copyright files and common licences), readmes (installed packages' READMEs, mostly
Markdown), code (Python standard-library sources), ui_strings (translated program messages from gettext
catalogs: short non-English snippets), debian_notes (README.Debian / NEWS.Debian prose). Each kind is written as
<out>/<kind>/part-00000.jsonl.gz ({"id", "text"}), the layout `--corpus` of the other benchmarks reads. Kinds
whose source is absent on this machine are skipped (printed). Deterministic: files in sorted order, every n-th.
Last line: one JSON object with the documents per kind.
"""
from __future__ import annotations

import argparse
import gettext
import gzip
import json
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

MAX_CHARS = 60_000


def _spread(files: list[Path], n: int) -> list[Path]:
    files = sorted(files)
    step = max(1, len(files) // n) if files else 1
    return files[::step][:n]


def _read(p: Path) -> str:
    data = gzip.open(p).read() if p.suffix == ".gz" else p.read_bytes()
    return data[:MAX_CHARS * 2].decode("utf-8", "replace")[:MAX_CHARS]


def _man(p: Path) -> str:
    try:
        src = gzip.open(p).read() if p.suffix == ".gz" else p.read_bytes()
        out = subprocess.run(["groff", "-k", "-man", "-Tutf8", "-P-cbou"], input=src, capture_output=True, timeout=20,
                             env={"LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"})
        return out.stdout.decode("utf-8", "replace")[:MAX_CHARS]
    except (OSError, subprocess.SubprocessError):
        return ""


def man_en(n: int) -> list[str]:
    return [_man(p) for p in _spread([p for s in ("man1", "man5", "man8") for p in Path("/usr/share/man", s).glob("*.gz")], n)]


def man_translated(n: int) -> list[str]:
    files = [p for d in Path("/usr/share/man").iterdir() if d.is_dir() and not d.name.startswith("man")
             for p in d.glob("man*/*.gz")] if Path("/usr/share/man").is_dir() else []
    return [_man(p) for p in _spread(files, n)]


def changelogs(n: int) -> list[str]:
    return [_read(p) for p in _spread(list(Path("/usr/share/doc").glob("*/changelog*.gz")), n)]


def legal(n: int) -> list[str]:
    files = list(Path("/usr/share/doc").glob("*/copyright")) + list(Path("/usr/share/common-licenses").glob("*"))
    return [_read(p) for p in _spread([f for f in files if f.is_file()], n)]


def readmes(n: int) -> list[str]:
    out = []
    site = Path(sysconfig.get_paths()["purelib"])
    for meta in _spread(list(site.glob("*.dist-info/METADATA")), n):
        text = meta.read_text(errors="replace")
        body = text.split("\n\n", 1)[1] if "\n\n" in text else ""
        out.append(body[:MAX_CHARS])
    return out


def code(n: int) -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return [_read(p) for p in _spread([p for p in stdlib.glob("*.py")] + list(stdlib.glob("*/*.py")), n)]


def ui_strings(n: int) -> list[str]:
    out = []
    for mo in _spread(list(Path("/usr/share/locale").glob("*/LC_MESSAGES/*.mo")), n):
        try:
            with open(mo, "rb") as f:
                cat = gettext.GNUTranslations(f)._catalog  # noqa: SLF001 - the messages themselves
        except Exception:  # noqa: BLE001 - a catalog in another format
            continue
        msgs = [v for k, v in cat.items() if k and isinstance(v, str) and v.strip()]
        out.append("\n".join(msgs[:80])[:MAX_CHARS])
    return out


def debian_notes(n: int) -> list[str]:
    files = list(Path("/usr/share/doc").glob("*/README.Debian*")) + list(Path("/usr/share/doc").glob("*/NEWS.Debian*"))
    return [_read(p) for p in _spread(files, n)]


KINDS = {"man_en": man_en, "man_translated": man_translated, "changelogs": changelogs, "legal": legal,
         "readmes": readmes, "code": code, "ui_strings": ui_strings, "debian_notes": debian_notes}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / ".keel" / "bench_corpora"))
    ap.add_argument("--per-kind", type=int, default=600)
    args = ap.parse_args()
    counts = {}
    for kind, make in KINDS.items():
        texts = [re.sub(r"\n{3,}", "\n\n", t).strip() for t in make(args.per_kind)]
        texts = [t for t in texts if len(t.split()) >= 5]
        if not texts:
            print(f"{kind:<16} skipped: no source on this machine")
            continue
        folder = Path(args.out) / kind
        folder.mkdir(parents=True, exist_ok=True)
        with gzip.open(folder / "part-00000.jsonl.gz", "wt", encoding="utf-8") as f:
            for i, t in enumerate(texts):
                f.write(json.dumps({"id": f"{kind}-{i}", "text": t}, ensure_ascii=False) + "\n")
        counts[kind] = len(texts)
        mb = sum(len(t.encode()) for t in texts) / 1e6
        print(f"{kind:<16} {len(texts):>5} documents {mb:6.1f} MB -> {folder}")
    print(json.dumps({"documents": counts}))


if __name__ == "__main__":
    sys.exit(main())
