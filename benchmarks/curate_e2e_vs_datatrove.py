"""keel's ingest + curate stages against a datatrove LocalPipelineExecutor pipeline doing the same steps, end to end
on the same files with the same number of worker processes, wall time including reading and writing:

    .venv-bench/bin/python benchmarks/curate_e2e_vs_datatrove.py [--corpus .keel/bench_corpora] [--workers 2]
                                                                  [--copies 2] [--files 8]

Steps on both sides: read JSONL.gz -> Gopher repetition -> Gopher quality -> C4 -> FineWeb -> MinHash near-dedup
(5-grams, 14 bands x 8 rows) -> write. datatrove: its documented four-stage MinHash pipeline (filters + signatures
and a JsonlWriter; buckets; clusters; MinhashDedupFilter + JsonlWriter), each stage a LocalPipelineExecutor with
`--workers` processes. Each side's libraries are imported before its clock starts. keel: the ingest stage (JSONL ->
Parquet partitions) and the curate stage (rules, exact dedup off for parity, MinHash near-dedup, rejects written) on
a local Dask cluster of `--workers` processes, its start included. Corpus: every part-*.jsonl(.gz) under `--corpus`
(benchmarks/build_corpora.py), `--copies` times with each copy edited (a line appended) so copies are near-
duplicates, split into `--files` input files. Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from curation_vs_datatrove import load_corpora  # noqa: E402

STEPS = ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality")


def write_inputs(texts: list[str], folder: Path, files: int) -> None:
    folder.mkdir(parents=True)
    per = -(-len(texts) // files)
    for f in range(files):
        with gzip.open(folder / f"part-{f:05d}.jsonl.gz", "wt", encoding="utf-8") as out:
            for i in range(f * per, min(len(texts), (f + 1) * per)):
                out.write(json.dumps({"id": f"d{i:08d}", "text": texts[i]}, ensure_ascii=False) + "\n")


def run_datatrove(inputs: Path, work: Path, workers: int, files: int) -> tuple[float, int]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                                  MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
    t0 = time.perf_counter()
    LocalPipelineExecutor([JsonlReader(str(inputs)), GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(),
                           FineWebQualityFilter(), JsonlWriter(str(work / "filtered")),
                           MinhashDedupSignature(output_folder=str(work / "sigs"), config=cfg)],
                          tasks=files, workers=workers, logging_dir=str(work / "logs1")).run()
    LocalPipelineExecutor([MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"),
                                               config=cfg)],
                          tasks=cfg.num_buckets, workers=workers, logging_dir=str(work / "logs2")).run()
    LocalPipelineExecutor([MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove"),
                                               config=cfg)], tasks=1, workers=1, logging_dir=str(work / "logs3")).run()
    LocalPipelineExecutor([JsonlReader(str(work / "filtered")), MinhashDedupFilter(input_folder=str(work / "remove")),
                           JsonlWriter(str(work / "out"))], tasks=files, workers=workers,
                          logging_dir=str(work / "logs4")).run()
    wall = time.perf_counter() - t0
    kept = sum(1 for f in (work / "out").glob("*.jsonl.gz") for _ in gzip.open(f, "rt"))
    return wall, kept


def run_keel(inputs: Path, work: Path, workers: int) -> tuple[float, float, int]:
    import distributed  # noqa: F401  (the libraries of each side are imported before its clock starts)

    from tasks.core.cluster import Cluster
    from tasks.core.stage import Runtime
    from tasks.core.storage import StageDir
    from tasks.curate import stage as curate
    from tasks.curate.config import CurateConfig, DedupConfig
    from tasks.govern.legal import DocumentPolicy, SourceData
    from tasks.ingest import stage as ingest
    from tasks.ingest.readers import Limits

    source = SourceData(id="bench", domain="general", license="MIT", format="jsonl", data_uri=str(inputs),
                        text_field="text", id_field="id", url_field="url", license_field="license")
    policy = DocumentPolicy((), (), (), (), (), (), (), False, False)
    cfg = CurateConfig(steps=STEPS, dedup=DedupConfig(exact=False, near=True))
    t0 = time.perf_counter()
    cluster = Cluster(n_workers=workers)
    try:
        cluster.client.wait_for_workers(workers)
        t1 = time.perf_counter()
        sd = StageDir(str(work), "ingest", "x")
        sd.begin()
        got = ingest.run(ingest.IngestSettings(Limits(max_doc_bytes=5_000_000), 2000, 0.5), ingest.IngestInputs((source,)), sd,
                         Runtime(cluster=cluster))
        sd2 = StageDir(str(work), "curate", "x")
        sd2.begin()
        res = curate.run(cfg, curate.CurateInputs(got, policy), sd2, Runtime(cluster=cluster))
        t2 = time.perf_counter()
    finally:
        cluster.close()
    return t2 - t0, t2 - t1, res.counts.kept


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=str(REPO / ".keel" / "bench_corpora"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--files", type=int, default=8)
    args = ap.parse_args()
    base = [t for ts in load_corpora(Path(args.corpus)).values() for t in ts]
    texts = [t if c == 0 else f"{t}\n\nEdited copy {c}." for c in range(args.copies) for t in base]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    tmp = Path(tempfile.mkdtemp(prefix="keel-e2e-bench-"))
    try:
        write_inputs(texts, tmp / "input", args.files)
        print(f"corpus: {len(texts):,} documents, {mb:.1f} MB in {args.files} JSONL.gz files; {args.workers} workers")
        dt_wall, dt_kept = run_datatrove(tmp / "input", tmp / "dt", args.workers, args.files)
        print(f"datatrove LocalPipelineExecutor  {dt_wall:7.1f} s  {len(texts) / dt_wall:8,.0f} docs/s  kept {dt_kept:,}")
        k_wall, k_work, k_kept = run_keel(tmp / "input", tmp / "keel", args.workers)
        print(f"keel ingest + curate (Dask)      {k_wall:7.1f} s  {len(texts) / k_wall:8,.0f} docs/s  kept {k_kept:,}  "
              f"({k_work:.1f} s without the cluster start)")
        print(f"ratio {dt_wall / k_wall:.2f}x (with the cluster start), {dt_wall / k_work:.2f}x (without)")
        print(json.dumps({"documents": len(texts), "mb": round(mb, 1), "workers": args.workers,
                          "datatrove_s": round(dt_wall, 2), "keel_s": round(k_wall, 2), "keel_s_no_start": round(k_work, 2),
                          "ratio": round(dt_wall / k_wall, 2), "ratio_no_start": round(dt_wall / k_work, 2),
                          "kept": {"datatrove": dt_kept, "keel": k_kept}}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
