"""Evaluation entry point: `python -m model.evaluate --config eval.json [--config other.json ...]` (several models in
one process: the imports, a good part of a small model's evaluation, are paid once).

Loads a dist checkpoint into a single-process (TP=1, PP=1) megatron-core GPTModel (dist_checkpointing reshards),
computes held-out loss, perplexity and bits-per-byte per group (a domain, or general) and per source on windows
sampled across each source's held-out split (stratified by source, seeded), exports the weights to a Hugging Face
GPT-2 model (with its tokenizer) and records the largest logit difference between the two (export parity),
samples a few generations and runs the downstream tasks with lm-evaluation-harness on the exported model. The job file is a `model.job.EvalJob`; the answer an `EvalOutput`.
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from model import checkpoint
from model.gpt import build_model, init_distributed
from model.integrity import read_verified
from model.job import EvalJob, EvalOutput, Generation, GroupScore, TaskScore, write


def token_stream(prefix: str) -> np.ndarray:
    """A dataset's documents as one token array, memory-mapped: megatron's .bin is their concatenation (the .idx
    holds the lengths), so the held-out split is read window by window, never loaded whole."""
    from megatron.core.datasets.indexed_dataset import _IndexReader

    index = _IndexReader(prefix + ".idx", multimodal=False)
    total = int(index.sequence_lengths.sum()) if len(index.sequence_lengths) else 0
    if not total:
        return np.zeros(0, dtype=np.int64)
    stream = np.memmap(prefix + ".bin", dtype=index.dtype, mode="r")
    assert len(stream) == total, f"{prefix}.bin holds {len(stream)} tokens, its index {total}"
    return stream


def _windows(prefixes: list[str], seq: int, limit: int, seed: int) -> dict[str, list[np.ndarray]]:
    """(seq+1)-token windows per dataset (a source's held-out split), `limit` in all: shared evenly between the
    datasets (what one cannot fill goes to the others) and drawn, seeded, from anywhere in each, not its start."""
    streams = {prefix: token_stream(prefix) for prefix in prefixes}
    available = {p: max((len(s) - 1) // seq, 0) for p, s in streams.items()}
    quota, left = dict.fromkeys(streams, 0), limit
    while left > 0 and any(quota[p] < available[p] for p in streams):
        open_ = [p for p in streams if quota[p] < available[p]]
        for p in open_[:left] if left < len(open_) else open_:
            quota[p] += 1
            left -= 1
    rng = np.random.default_rng(seed)
    out = {}
    for p, stream in streams.items():
        starts = np.sort(rng.choice(available[p], size=quota[p], replace=False)) * seq if quota[p] else []
        out[p] = [stream[s:s + seq + 1].astype(np.int64) for s in starts]
    return out


@torch.no_grad()
def _sums(model, windows: list[np.ndarray], tokenizer, seq: int, device: str = "cpu", batch: int = 8) -> tuple:
    """(summed nll, tokens, bytes, sequences) over the windows."""
    nll, count, nbytes = 0.0, 0, 0
    for i in range(0, len(windows), batch):
        w = torch.from_numpy(np.stack(windows[i:i + batch]))
        tokens, labels = w[:, :-1], w[:, 1:]
        pos = torch.arange(seq).unsqueeze(0).expand_as(tokens)
        losses = model(tokens.to(device), pos.to(device), None, labels=labels.to(device))
        nll += float(losses.double().sum())
        count += labels.numel()
        nbytes += sum(len(tokenizer.decode(x.tolist(), skip_special_tokens=False).encode()) for x in labels)
    return nll, count, nbytes, len(windows)


def _group_score(nll: float, count: int, nbytes: int, sequences: int) -> GroupScore:
    if not count:
        return GroupScore(loss=None, ppl=None, bpb=None, tokens=0, sequences=0)
    loss = nll / count
    return GroupScore(loss=loss, ppl=math.exp(loss), bpb=nll / math.log(2) / max(nbytes, 1), tokens=count,
                      sequences=sequences)


def _source_name(prefix: str) -> str:
    return prefix.rstrip("/").rsplit("/", 1)[-1]


def score_groups(model, groups: dict[str, list[str]], tokenizer, seq: int, limit: int, seed: int,
                 device: str = "cpu") -> tuple[dict[str, GroupScore], dict[str, GroupScore]]:
    """Per group (a domain, or general) and per dataset in it: loss, ppl and bits per byte on `limit` windows per
    group, stratified by dataset (tasks/tokenize writes one per source and split)."""
    by_group, by_source = {}, {}
    for name, prefixes in groups.items():
        total = [0.0, 0, 0, 0]
        for prefix, windows in _windows(prefixes, seq, limit, seed).items():
            sums = _sums(model, windows, tokenizer, seq, device)
            by_source[_source_name(prefix)] = _group_score(*sums)
            total = [a + b for a, b in zip(total, sums)]
        by_group[name] = _group_score(*total)
    return by_group, by_source


def run_tasks(hf_dir: str, tasks_dir: str, names: list[str], device: str, seed: int) -> dict[str, TaskScore]:
    """Zero-shot accuracy of the exported model on local lm-eval tasks (lm-evaluation-harness, nothing downloaded)."""
    import os
    import tempfile
    from pathlib import Path

    cache = Path(tempfile.mkdtemp(prefix="keel-lm-eval-"))  # datasets' cache of the JSONL (not kept)
    os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                       "HF_HOME": str(cache), "HF_DATASETS_CACHE": str(cache / "datasets"),
                       "TOKENIZERS_PARALLELISM": "false"})
    import lm_eval
    from lm_eval.tasks import TaskManager

    res = lm_eval.simple_evaluate(model="hf", model_args={"pretrained": hf_dir, "dtype": "float32", "device": device},
                                  tasks=names, task_manager=TaskManager(include_path=tasks_dir, include_defaults=False),
                                  num_fewshot=0, batch_size=16, random_seed=seed, numpy_random_seed=seed,
                                  torch_random_seed=seed, fewshot_random_seed=seed, log_samples=False)
    import shutil

    shutil.rmtree(cache, ignore_errors=True)
    out = {}
    for name in names:
        r = res["results"][name]
        out[name] = TaskScore(acc=float(r["acc,none"]), acc_stderr=float(r["acc_stderr,none"]),
                              items=int(res["n-samples"][name]["effective"]))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, action="append", help="an EvalJob file; repeat for more models")
    for path in parser.parse_args(argv).config:
        evaluate(EvalJob.read(path))


def evaluate(job: EvalJob) -> None:
    """Score one model and write its EvalOutput to job.result_path."""
    import os

    from tokenizers import Tokenizer

    from model.gpt import _free_port

    spec = job.spec
    if "TORCHELASTIC_RUN_ID" not in os.environ and not torch.distributed.is_initialized():
        os.environ["MASTER_PORT"] = str(_free_port())  # a fresh rendezvous port for each model of the process
    device = init_distributed(1, 1, job.seed)
    model = build_model(spec, bf16=False, attention="sdpa", recompute="none")  # fp32 scoring, even of a bf16 model
    checkpoint.load(job.checkpoint, model, manifest_sha=job.checkpoint_manifest)
    model.eval()
    tokenizer = Tokenizer.from_str(read_verified(job.tokenizer, job.tokenizer_sha256, "tokenizer").decode())
    groups, sources = score_groups(model, job.groups, tokenizer, spec.seq_length, job.max_sequences, job.seed, device)

    from model.hf_export import export, save_tokenizer

    hf = export(model.state_dict(), spec, job.eod, job.hf_dir)  # a CPU model, whatever the device here
    save_tokenizer(job.tokenizer, job.hf_dir, spec.seq_length, tokenizer.id_to_token(job.eod))
    probe = torch.randint(0, tokenizer.get_vocab_size(), (2, spec.seq_length))
    with torch.no_grad():
        pos = torch.arange(spec.seq_length).unsqueeze(0).expand_as(probe)
        ours = model(probe.to(device), pos.to(device), None).float().cpu()
        theirs = hf(probe).logits
    gens = []
    for prompt in job.prompts:
        ids = torch.tensor([tokenizer.encode(prompt).ids[-(spec.seq_length // 2):]])
        out = hf.generate(ids, max_new_tokens=job.max_new_tokens, do_sample=True, top_k=40,
                          temperature=0.8, pad_token_id=job.eod)
        gens.append(Generation(prompt=prompt, completion=tokenizer.decode(out[0, ids.shape[1]:].tolist())))
    diff = float((ours - theirs).abs().max())
    del model
    torch.distributed.destroy_process_group()
    tasks = run_tasks(job.hf_dir, job.tasks_dir, job.task_names, device, job.seed) if job.task_names else {}
    write(EvalOutput(groups=groups, sources=sources, hf_dir=job.hf_dir, max_abs_logit_diff=diff, generations=gens,
                     tasks=tasks), job.result_path)


if __name__ == "__main__":
    main()
