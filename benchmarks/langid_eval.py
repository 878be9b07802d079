"""Language id measured: precision and recall for English of the `language` rule (fastText screen + lingua
confirmation, at its defaults) and of fastText alone at several thresholds, on two multilingual sets this machine
ships:

- `catalogues` (clean labels): the translated message catalogues under /usr/share/locale/<lang>/LC_MESSAGES/*.mo
  (msgstr differing from its msgid, joined into ~300-character paragraphs; up to 200 per language, 89 languages)
  and their English msgids as the positives;
- `manpages` (noisy negatives): translated man pages under /usr/share/man/<lang>/, their English originals and
  Debian copyright files; translators leave paragraphs in English, and those found verbatim in the English
  original are dropped, but not those from another version of it.

  .venv/bin/python benchmarks/langid_eval.py [--max-per-lang 300]

Prints, per set, precision/recall per setting and what the rule gets wrong by language. Last line: one JSON
object of figures.
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_TROFF = re.compile(r"\\f[BIRP]|\\f\(..|\\\(..|\\[-&e]|\\s[+-]?\d|\\\*.|\\")


def man_text(raw: str) -> str:
    lines = []
    for line in raw.splitlines():
        if line.startswith((".", "'")):
            if line.startswith((".B ", ".I ", ".BR ", ".IR ", ".SH ")):
                lines.append(line.split(" ", 1)[1].replace('"', ""))
            continue
        lines.append(line)
    return _TROFF.sub("", "\n".join(lines))


def paragraphs(text: str, rng: random.Random, min_chars: int = 200, max_chars: int = 2000,
               max_keep: int = 3) -> list[str]:
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    paras = [p[:max_chars] for p in paras if len(p) >= min_chars and sum(c.isalpha() for c in p) > 0.6 * len(p)]
    rng.shuffle(paras)
    return paras[:max_keep]


def corpus(max_per_lang: int) -> dict[str, list[str]]:
    rng = random.Random(0)
    out: dict[str, list[str]] = collections.defaultdict(list)
    for d in sorted(glob.glob("/usr/share/man/*/")):
        lang = Path(d).name
        if lang.startswith("man"):
            lang = "en"
        lang = lang.split("_")[0]
        files = sorted(glob.glob(f"{d}**/*.gz", recursive=True))
        rng.shuffle(files)
        for f in files:
            if len(out[lang]) >= max_per_lang:
                break
            try:
                paras = paragraphs(man_text(gzip.open(f, "rt", errors="replace").read()), rng)
                if lang != "en":  # translators leave paragraphs in English: drop those found in the original
                    original = Path("/usr/share/man") / Path(f).relative_to(d)
                    english = set(paragraphs(man_text(gzip.open(original, "rt", errors="replace").read()),
                                             random.Random(0), max_keep=10**6)) if original.exists() else set()
                    paras = [p for p in paras if p not in english and not any(p[:80] in e for e in english)]
                out[lang] += paras
            except (OSError, EOFError):
                continue
    for f in sorted(glob.glob("/usr/share/doc/*/copyright"))[:400]:
        if len(out["en"]) >= 2 * max_per_lang:
            break
        out["en"] += paragraphs(open(f, errors="replace").read(), rng)
    return {k: v[:2 * max_per_lang if k == "en" else max_per_lang] for k, v in out.items() if len(v) >= 10}


def catalogues(max_per_lang: int = 200) -> dict[str, list[str]]:
    """Translated gettext catalogues: each language's msgstrs (those that differ from the msgid) and the English
    msgids, joined into paragraphs of about 300 characters."""
    import gettext

    rng = random.Random(0)
    out: dict[str, list[str]] = collections.defaultdict(list)
    english: list[str] = []
    files = sorted(glob.glob("/usr/share/locale/*/LC_MESSAGES/*.mo"))
    rng.shuffle(files)
    for f in files:
        lang = Path(f).parts[4].split("_")[0].split("@")[0]
        try:
            with open(f, "rb") as fh:
                catalogue = gettext.GNUTranslations(fh)._catalog
        except Exception:  # noqa: BLE001  (a malformed catalogue header: skip the file)
            continue
        buf: list[str] = []
        ebuf: list[str] = []
        for k, v in catalogue.items():
            if not isinstance(k, str) or not k or not isinstance(v, str) or len(v) < 30 or v.strip() == k.strip():
                continue
            buf.append(" ".join(v.split()))
            ebuf.append(" ".join(k.split()))
            if sum(map(len, buf)) >= 300:
                if len(out[lang]) < max_per_lang and rng.random() < 0.3:
                    out[lang].append(" ".join(buf))
                if rng.random() < 0.02:
                    english.append(" ".join(ebuf))
                buf, ebuf = [], []
    data = {k: v for k, v in out.items() if len(v) >= 20 and k != "en"}
    data["en"] = english
    return data


def evaluate(name: str, data: dict[str, list[str]]) -> dict:
    import pandas as pd

    from tasks.curate.rules.language import LanguageConfig, _screen, language

    texts = [t for texts in data.values() for t in texts]
    truth = [lang for lang, texts in data.items() for _ in texts]
    t0 = time.perf_counter()
    rule = language(pd.DataFrame({"text": texts}), LanguageConfig())
    rule_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    screen = [_screen(t).get("en", 0.0) for t in texts]
    screen_s = time.perf_counter() - t0
    positives = sum(t == "en" for t in truth)

    def pr(kept) -> dict:
        tp = sum(k and t == "en" for k, t in zip(kept, truth))
        return {"precision": round(tp / max(sum(kept), 1), 4), "recall": round(tp / max(positives, 1), 4)}

    fig = {"paragraphs": len(texts), "languages": len(data), "english": positives,
           "rule": pr(list(rule.keep)), "rule_docs_per_s": round(len(texts) / rule_s),
           "fasttext_docs_per_s": round(len(texts) / screen_s),
           "fasttext_alone": {str(th): pr([s >= th for s in screen]) for th in (0.3, 0.5, 0.65, 0.8)}}
    print(f"[{name}] {len(texts)} paragraphs, {len(data)} languages, {positives} English")
    print(f"  rule (fastText screen >= {LanguageConfig().screen_min_score}, lingua >= {LanguageConfig().min_score}): "
          f"precision {fig['rule']['precision']:.4f} recall {fig['rule']['recall']:.4f} "
          f"({fig['rule_docs_per_s']} paragraphs/s; fastText alone {fig['fasttext_docs_per_s']}/s)")
    for th, v in fig["fasttext_alone"].items():
        print(f"  fastText alone >= {th}: precision {v['precision']:.4f} recall {v['recall']:.4f}")
    wrong = collections.Counter(t for k, t in zip(rule.keep, truth) if k and t != "en")
    missed = [x for k, t, x in zip(rule.keep, truth, texts) if not k and t == "en"]
    print("  non-English kept, by language:", dict(wrong.most_common(10)))
    for x in missed[:3]:
        print("  English rejected, e.g.:", x[:120])
    return fig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-per-lang", type=int, default=300)
    args = ap.parse_args()
    figures = {"catalogues": evaluate("catalogues", catalogues(min(args.max_per_lang, 200))),
               "manpages": evaluate("manpages", corpus(args.max_per_lang))}
    figures["at_default"] = figures["catalogues"]["rule"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
