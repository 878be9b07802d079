"""How the data stages grow with the corpus and with the workers: wall time, documents/s and peak memory (RSS) of
the driver and of each Dask worker, per stage.

    .venv/bin/python benchmarks/scaling.py [--base 1000] [--sizes 1,4,16] [--workers 2]
                                           [--external 1,2,4] [--external-size 4]

The corpus is the demo corpus (built from installed packages), `--base` documents of it spread over its four sources,
then at size k its k copies: copy 0 is the original, every other copy a new document (new id; its paragraphs
shuffled and a quarter of its words replaced by words of the same source), and one copy in ten of those only
lightly edited (a few words changed, a line added), so dedup has real near-duplicate clusters to find at every size.
The stages (legal -> ingest -> contract raw -> curate with exact and MinHash dedup -> contract curated -> tokenize ->
contract tokenized) run with the demo recipe's settings, each size in a fresh process on a LocalCluster of
`--workers` processes; then the `--external-size` corpus on external `dask scheduler` / `dask worker` processes
(the setup a cluster uses) with each count of `--external` workers. RSS is sampled every 50 ms.

Last line: one JSON object with per-size and per-worker-count figures, `driver_rss_growth` (driver peak RSS at the
largest size over the smallest) and `worker_rss_growth` (the same for the largest worker's peak).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SOURCES = ("shakespeare", "python_docs", "mitre_cwe", "mitre_attack")


def _edit(text: str, vocab: list[str], rng: random.Random, light: bool) -> str:
    if light:
        words = text.split(" ")
        for _ in range(3):
            words[rng.randrange(len(words))] = rng.choice(vocab)
        return " ".join(words) + "\n\nRevised copy."
    paragraphs = text.split("\n\n")
    rng.shuffle(paragraphs)
    words = "\n\n".join(paragraphs).split(" ")
    for i in range(len(words)):
        if rng.random() < 0.25:
            words[i] = rng.choice(vocab)
    return " ".join(words)


def build_corpus(base: int, size: int, data_root: Path, demo: Path, seed: int = 0) -> int:
    """`size` copies of `base` demo documents under data_root/<source>/ (JSONL.gz, 2,000 documents a file)."""
    rng = random.Random(seed)
    per_source = {}
    for s in SOURCES:
        per_source[s] = [json.loads(line) for f in sorted((demo / s).glob("*.jsonl.gz")) for line in gzip.open(f, "rt")]
    total = sum(len(v) for v in per_source.values())
    n = 0
    for s, docs in per_source.items():
        take = docs[: max(1, round(base * len(docs) / total))]
        vocab = sorted({w for d in take for w in d["text"].split() if w.isalpha()})
        rows = []
        for c in range(size):
            for d in take:
                if c == 0:
                    rows.append(d)
                else:
                    r = random.Random(f"{seed}/{c}/{d['id']}")
                    rows.append({**d, "id": f"{d['id']}~{c}", "text": _edit(d["text"], vocab, r, r.random() < 0.1)})
        folder = data_root / s
        folder.mkdir(parents=True)
        for f in range(0, len(rows), 2000):
            with gzip.open(folder / f"part-{f // 2000:05d}.jsonl.gz", "wt", encoding="utf-8") as out:
                for row in rows[f:f + 2000]:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += len(rows)
    return n


class Sampler:
    """Peak RSS of this process and of each worker process, per stage, sampled in a thread."""

    def __init__(self, workers):
        import psutil

        self.me, self.workers, self.psutil = psutil.Process(), workers, psutil
        self.peaks: dict[str, dict] = {}
        self.stage = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.stage:
                p = self.peaks.setdefault(self.stage, {"driver": 0, "worker": 0})
                p["driver"] = max(p["driver"], self.me.memory_info().rss)
                for proc in self.workers():
                    try:
                        p["worker"] = max(p["worker"], proc.memory_info().rss)
                    except self.psutil.Error:
                        pass
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _worker_processes(address: str):
    """The worker processes: the LocalCluster's children (without their nannies), or those of an external one."""
    import psutil

    def find():
        procs = psutil.Process().children(recursive=True) if not address else \
            [p for p in psutil.process_iter(["cmdline"]) if "dask worker" in " ".join(p.info["cmdline"] or [])
             or any("distributed.cli.dask_worker" in c for c in (p.info["cmdline"] or []))]
        out = []
        for p in procs:
            try:
                kids = p.children(recursive=True)
            except psutil.Error:
                continue
            out += kids if kids and not address else [p] + kids
        return out

    return find


def run_stages(data_root: Path, work: Path, workers: int, address: str) -> dict:
    """The data stages in this process; per stage wall time and peak RSS."""
    from tasks.core.cluster import Cluster
    from tasks.core.stage import Runtime
    from tasks.core.storage import StageDir
    from tasks.curate import stage as curate
    from tasks.govern import contracts, legal
    from tasks.govern.contracts import ContractCheck, ContractInputs
    from tasks.ingest import stage as ingest
    from tasks.recipe import load_recipe
    from tasks.tokenize import stage as tokenize

    r = load_recipe(REPO / "infra" / "recipes" / "demo.toml", [f'sources.data_root="{data_root}"'])
    cluster = Cluster(address=address, n_workers=workers)
    cluster.client.wait_for_workers(workers)
    sampler = Sampler(_worker_processes(address))
    exp = r.contracts.expectations
    times, counts = {}, {}

    def stage(name, fn, cfg, inputs):
        sd = StageDir(str(work), name, "x")
        sd.begin()
        sampler.stage = name
        t0 = time.perf_counter()
        res = fn(cfg, inputs, sd, Runtime(cluster=cluster))
        times[name] = time.perf_counter() - t0
        time.sleep(0.1)
        return res

    try:
        gate = stage("legal", legal.run, legal.GateRequest(r.sources, r.legal), None)
        sources = tuple(m.data() for m in gate.sources)
        got = stage("ingest", ingest.run, ingest.IngestSettings(r.sources.limits(), r.dask.partition_rows,
                                                                 r.sources.max_quarantined_share),
                    ingest.IngestInputs(sources))
        stage("contract_raw", contracts.run, ContractCheck("raw", exp, {"$source_ids": sorted(m.id for m in gate.sources)},
                                                           warn_only=("global:unique",)), ContractInputs(folder=got.docs))
        cur = stage("curate", curate.run, r.curate, curate.CurateInputs(got, gate.policy))
        stage("contract_curated", contracts.run, ContractCheck("curated", exp, {
            "$allowed_licenses": list(gate.allowed_licenses), "$languages": list(r.curate.language.languages),
            "$hap_threshold": r.curate.hap.threshold}), ContractInputs(folder=cur.data))
        tok = stage("tokenize", tokenize.run, r.tokenize, tokenize.TokenizeInputs(cur, sources))
        stage("contract_tokenized", contracts.run, ContractCheck("tokenized", exp, {}),
              ContractInputs(rows=tokenize.contract_rows(tok)))
        counts = {"ingested": got.counts.kept, "curated": cur.counts.kept, "tokenized": tok.counts.kept,
                  "near_dedup": cur.rejected_by_reason.get("near_duplicate", 0),
                  "exact_dedup": cur.rejected_by_reason.get("exact_duplicate", 0)}
    finally:
        sampler.stage = ""
        sampler.stop()
        cluster.close()
    mb = 1 << 20
    return {"counts": counts, "stages": {n: {"s": round(times[n], 2), "driver_mb": round(sampler.peaks[n]["driver"] / mb),
                                            "worker_mb": round(sampler.peaks[n]["worker"] / mb)} for n in times}}


def one(args) -> None:
    """One size in this process (called by `main` in a fresh interpreter)."""
    import tasks.curate.stage  # noqa: F401  (imports paid before the measurement)
    import tasks.tokenize.stage  # noqa: F401

    from tasks.ingest.demo_corpus import build_demo_corpus

    tmp = Path(tempfile.mkdtemp(prefix="keel-scaling-"))
    try:
        demo = REPO / ".keel" / "corpus"
        if not all((demo / s).is_dir() for s in SOURCES):
            demo = tmp / "demo"
            build_demo_corpus(demo)
        docs = build_corpus(args.base, args.one, tmp / "data", demo)
        out = run_stages(tmp / "data", tmp / "work", args.workers, args.address)
        out.update({"size": args.one, "documents": docs, "workers": args.workers, "external": bool(args.address)})
        print("RESULT " + json.dumps(out))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _child(argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, cwd=REPO)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"scaling run {argv} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return json.loads(line[7:])


def _external(n: int):
    """A `dask scheduler` and `n` single-threaded `dask worker` processes on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    sched = subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                              "--dashboard-address", "127.0.0.1:0"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, cwd=REPO)
    address = f"tcp://127.0.0.1:{port}"
    worker = subprocess.Popen([str(bindir / "dask"), "worker", address, "--nworkers", str(n), "--nthreads", "1",
                               "--memory-limit", "4GiB", "--host", "127.0.0.1", "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    return address, [sched, worker]


def _table(rows: list[dict], key: str) -> None:
    stages = list(rows[0]["stages"])
    print(f"{key:>8} {'docs':>7} " + " ".join(f"{s[:16]:>16}" for s in stages))
    for r in rows:
        cells = [f"{r['stages'][s]['s']:6.1f}s {r['stages'][s]['driver_mb']:4d}/{r['stages'][s]['worker_mb']:<4d}"
                 for s in stages]
        print(f"{r[key]:>8} {r['documents']:>7} " + " ".join(f"{c:>16}" for c in cells))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=int, default=1000)
    ap.add_argument("--sizes", default="1,4,16")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--external", default="1,2,4")
    ap.add_argument("--external-size", type=int, default=4)
    ap.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--address", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one(args)
    common = ["--base", str(args.base), "--workers", str(args.workers)]
    sizes = [_child(common + ["--one", str(k)]) for k in map(int, args.sizes.split(","))]
    print("per stage: wall time, driver / largest worker peak RSS (MB)")
    _table(sizes, "size")
    external = []
    for n in [int(x) for x in args.external.split(",") if x]:
        address, procs = _external(n)
        try:
            external.append(_child(["--base", str(args.base), "--workers", str(n), "--one", str(args.external_size),
                                    "--address", address]))
        finally:
            for p in reversed(procs):
                p.terminate()
                p.wait(timeout=30)
    if external:
        print(f"\nexternal dask scheduler + workers, size {args.external_size}")
        _table(external, "workers")

    def peak(r, who):
        return max(s[f"{who}_mb"] for s in r["stages"].values())

    first, last = sizes[0], sizes[-1]
    summary = {
        "base": args.base, "sizes": [r["size"] for r in sizes], "documents": [r["documents"] for r in sizes],
        "driver_peak_mb": [peak(r, "driver") for r in sizes], "worker_peak_mb": [peak(r, "worker") for r in sizes],
        "driver_rss_growth": round(peak(last, "driver") / peak(first, "driver"), 3),
        "worker_rss_growth": round(peak(last, "worker") / peak(first, "worker"), 3),
        "time_growth": round(sum(s["s"] for s in last["stages"].values()) / sum(s["s"] for s in first["stages"].values()), 2),
        "size_growth": round(last["documents"] / first["documents"], 2),
        "docs_per_s": {str(r["size"]): {n: round(r["documents"] / max(s["s"], 1e-9), 1) for n, s in r["stages"].items()
                                        if n != "legal"}
                       for r in sizes},
        "per_size": sizes, "external": external,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
