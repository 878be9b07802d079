"""HAP scorer quality and speed.

  .venv/bin/python benchmarks/hap_eval.py [--labelled FILE.jsonl] [--out benchmarks/results/hap_pr.json]

Quality: AUROC, the precision/recall curve and the operating point at the default threshold, for keel's document
score and for the bare profanity classifier, on a labelled set: by default the small set below (written for
development: hate and abuse with and without swear words, and hard negatives from technical, security, news and
literary text); pass `--labelled` (JSONL of {"text", "label": 0/1}) for another set in benchmarks/data/:
hap_heldout.jsonl (100 texts written after the first patterns), hap_heldout_2.jsonl (140), hap_heldout_3.jsonl
(160) and hap_heldout_4/5/6.jsonl (160, 160 longer posts, 200), each written by another author who saw none of the
scorer's code, lists or training texts (the README says which changes each set has seen since), and
hap_hard_negatives.jsonl (300 texts that are not abusive but share its words: quotations reported,
counter-speech, fiction, group discussion, harsh but fair talk, violent vocabulary; a development set whose
figure is the number rejected). The documents rejected at the default threshold on the demo corpus and the
benchmark corpora (benchmarks/build_corpora.py), per corpus: what a change costs in text that is not abusive
(most of what is rejected there is Shakespeare's insults). Speed: documents per second per core on the demo
corpus (one process), and the classifier alone as the package evaluates it vs keel's batched evaluation of the
same model.
Last line: one JSON object of figures; the curve is written to --out.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.curate.rules.hap import HapConfig, hap_scores, sentences  # noqa: E402

POSITIVE = [
    "You are a worthless piece of garbage and nobody likes you.", "Shut your mouth, you pathetic loser.",
    "I will find you and make you regret it.", "Go kill yourself, seriously.", "You should just die already.",
    "People like you are a disease.", "Immigrants are vermin and should be deported.", "Muslims are all terrorists.",
    "Women are inferior and should stay in the kitchen, you dumb cow.", "Go back to your country, we don't want you here.",
    "Jews are parasites.", "Gays are disgusting freaks.", "I hate all Mexicans.", "Those people are animals.",
    "Refugees are an infestation.", "Get rid of the immigrants before they breed.", "What a fucking idiot.",
    "You stupid bitch.", "Fuck off and die.", "You're such a moron it's painful.", "Nobody wants you here, loser.",
    "Kill all the Jews.", "Blacks are apes.", "You ugly fat pig.", "Trans people are sick freaks.",
    "You are retarded.", "Your mother is a whore.", "I'm going to beat you when I see you.", "Die in a fire.",
    "This thread is full of subhuman scum like you.", "Arabs are savages.", "We should exterminate the Roma.",
    "you are a disgusting creep", "What a pathetic excuse for a human you are.", "Shut the fuck up.",
    "Eat shit, asshole.", "You worthless idiot, read the manual.", "Feminists are cancer.",
    "Chinese people are rats.", "Hang them all, every last one of those refugees.",
]
NEGATIVE = [
    "Kill the child process with SIGKILL if it does not exit.", "The attacker can exploit the buffer overflow.",
    "Use kill -9 only as a last resort.", "Immigrants contributed to the growth of the city.",
    "Muslims around the world celebrate Eid al-Fitr.", "The study interviewed refugees from three countries.",
    "Hate speech laws differ between countries.", "The moderators removed comments that insulted other users.",
    "Penetration testing is an authorised simulated attack.", "The master process forks worker processes.",
    "Shoot the photograph in natural light.", "The idiom 'dumb terminal' means a display without processing.",
    "He executed the script and the daemon died.", "The malware kills antivirus processes before encryption.",
    "Women's suffrage was won in 1920.", "Jewish holidays follow the lunar calendar.",
    "The dog chased the rats out of the barn.", "Thou art a villain, sir, and I will have satisfaction!",
    "The garbage collector frees unused memory.", "Pigs are intelligent animals.",
    "Trash the cache and rebuild the index.", "The virus spread through infected email attachments.",
    "Black people and white people voted in record numbers.", "A stupid mistake in the config broke the build.",
    "The film depicts the horrors of genocide.", "Asians make up a large share of the population.",
    "Go back to the previous page to retry.", "You should restart the server after the update.",
    "I will find you a better solution tomorrow.", "The ugly duckling became a swan.",
    "The enemy shot down two aircraft.", "The cat killed a mouse.", "Destroy the container and recreate it.",
    "Deport the artifacts to the staging registry.", "The bastard file format has no spec.",
    "You are welcome to contribute patches.", "Trans-Pacific cables carry most traffic.",
    "The crowd chanted as the team scored.", "CVE-2021-44228 lets an attacker execute code remotely.",
    "Ban the IP address after five failed logins.",
]


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    for v in np.unique(s):  # average ranks of ties
        tie = s == v
        ranks[tie] = ranks[tie].mean()
    pos = y == 1
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


def curve(y: np.ndarray, s: np.ndarray) -> list[dict]:
    out = []
    for t in sorted(set(np.round(s, 4)) | {0.5, 0.9, 0.99, 1.0}):
        pred = s >= t
        tp = int((pred & (y == 1)).sum())
        out.append({"threshold": float(t), "precision": tp / max(int(pred.sum()), 1), "recall": tp / max(int(y.sum()), 1)})
    return out


def at(y: np.ndarray, s: np.ndarray, t: float) -> dict:
    pred = s >= t
    tp = int((pred & (y == 1)).sum())
    return {"threshold": t, "precision": round(tp / max(int(pred.sum()), 1), 4), "recall": round(tp / max(int(y.sum()), 1), 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labelled", default="")
    ap.add_argument("--out", default="benchmarks/results/hap_pr.json")
    ap.add_argument("--demo", default=".keel/corpus")
    ap.add_argument("--corpora", default=".keel/bench_corpora",
                    help="folders of JSONL (benchmarks/build_corpora.py): documents rejected at the default, per folder")
    args = ap.parse_args()
    if args.labelled:
        rows = [json.loads(line) for line in Path(args.labelled).read_text().splitlines() if line.strip()]
        texts, y = [r["text"] for r in rows], np.array([int(r["label"]) for r in rows])
    else:
        texts, y = POSITIVE + NEGATIVE, np.array([1] * len(POSITIVE) + [0] * len(NEGATIVE))
    from profanity_check import predict_prob

    ours = hap_scores(texts)
    bare = np.array([max(predict_prob(sentences(t))) for t in texts])
    threshold = HapConfig().threshold
    figures = {"set": args.labelled or "built-in development set", "n": len(texts), "positives": int(y.sum())}
    for name, s in (("keel", ours), ("profanity_check", bare)):
        if 0 < y.sum() < len(y):
            figures[name] = {"auroc": round(auroc(y, s), 4), **at(y, s, threshold)}
            print(f"{name:<16} AUROC {figures[name]['auroc']:.3f}   at threshold {threshold}: precision "
                  f"{figures[name]['precision']:.3f} recall {figures[name]['recall']:.3f}")
        else:  # one class only (e.g. a set of hard negatives): how many reach the threshold
            figures[name] = {"threshold": threshold, "rejected": int((s >= threshold).sum())}
            print(f"{name:<16} at threshold {threshold}: {figures[name]['rejected']} of {len(s)} rejected")
    missed = [t for t, s, lab in zip(texts, ours, y) if lab == 1 and s < threshold]
    wrong = [t for t, s, lab in zip(texts, ours, y) if lab == 0 and s >= threshold]
    print("missed:", missed[:10])
    print("false alarms:", wrong[:10])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"operating_point": figures["keel"], "curve": curve(y, ours)}, indent=1))
    import gzip

    def documents(folder: Path) -> list[str]:
        out = []
        for f in sorted(folder.glob("*.jsonl*")):
            raw = gzip.open(f, "rt").read() if f.suffix == ".gz" else f.read_text()
            out += [json.loads(line)["text"] for line in raw.splitlines() if line.strip()]
        return out

    rejected = {}
    for label, root in (("demo", Path(args.demo)), ("bench", Path(args.corpora))):
        for sub in sorted(x for x in root.glob("*") if x.is_dir()):
            texts_ = documents(sub)
            if texts_:
                rejected[f"{label}/{sub.name}"] = [int((hap_scores(texts_) >= threshold).sum()), len(texts_)]
    if rejected:
        figures["corpus_rejected"] = rejected
        total = [sum(v[0] for v in rejected.values()), sum(v[1] for v in rejected.values())]
        figures["corpus_rejected_total"] = total
        print(f"rejected at the default threshold on the demo and benchmark corpora: {total[0]} of {total[1]} "
              f"documents; by corpus: " + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in rejected.items()))

    docs = []
    for f in sorted(Path(args.demo).glob("*/*.jsonl*"))[:20]:
        raw = gzip.open(f, "rt").read() if f.suffix == ".gz" else f.read_text()
        docs += [json.loads(line)["text"] for line in raw.splitlines()[:2000] if line.strip()]
    if docs:
        import os

        from tasks.curate.rules import hap_model

        os.environ.setdefault("OMP_NUM_THREADS", "1")
        hap_scores(docs[:50])  # models loaded
        runs = []
        for _ in range(4):  # the first pass over the corpus, then three more: a worker scores partition after
            t0 = time.perf_counter()  # partition, so the steady state (the median of the three) is the figure
            hap_scores(docs)
            runs.append(time.perf_counter() - t0)
        dt = float(np.median(runs[1:]))
        figures["demo_docs_per_s"] = round(len(docs) / dt, 1)
        figures["demo_docs_per_s_first_pass"] = round(len(docs) / runs[0], 1)
        figures["demo_mb_per_s"] = round(sum(map(len, docs)) / dt / 1e6, 2)
        print(f"speed on the demo corpus: {len(docs)} documents, {figures['demo_docs_per_s']:.0f} docs/s "
              f"({figures['demo_mb_per_s']} MB/s) on one core, median of three passes; the first pass "
              f"{figures['demo_docs_per_s_first_pass']:.0f} docs/s")
        flat = [x for d in docs for x in sentences(d)]
        t0 = time.perf_counter()
        predict_prob(flat)
        package_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        hap_model.predict_prob(flat)
        batched_s = time.perf_counter() - t0
        figures["classifier_sentences"] = len(flat)
        figures["classifier_package_s"] = round(package_s, 3)
        figures["classifier_batched_s"] = round(batched_s, 3)
        figures["classifier_speedup"] = round(package_s / batched_s, 2)
        print(f"classifier on {len(flat)} sentences: the package's predict_prob {package_s:.2f} s, keel's batched "
              f"evaluation of the same model {batched_s:.2f} s ({package_s / batched_s:.1f}x)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
