"""Evaluation entry point: `python -m model.evaluate --config eval.json`.

Loads a dist checkpoint into a single-process (TP=1, PP=1) megatron-core GPTModel (dist_checkpointing reshards),
computes held-out loss, perplexity and bits-per-byte per split group, exports the weights to a Hugging Face
GPT-2 model and records the largest logit difference between the two (export parity), and samples a few
generations. The job file is a `model.job.EvalJob`; the answer an `EvalOutput`.
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from model import checkpoint
from model.gpt import build_model, init_distributed
from model.integrity import read_verified
from model.job import EvalJob, EvalOutput, Generation, GroupScore, write


def _windows(prefixes: list[str], seq: int, limit: int) -> list[np.ndarray]:
    """Consecutive (seq+1)-token windows over the concatenated documents of the datasets."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    out = []
    for prefix in prefixes:
        ds = IndexedDataset(prefix)
        stream = np.concatenate([ds[i] for i in range(len(ds))]) if len(ds) else np.zeros(0, dtype=np.int64)
        for start in range(0, len(stream) - seq, seq):
            out.append(stream[start:start + seq + 1].astype(np.int64))
            if len(out) >= limit:
                return out
    return out


@torch.no_grad()
def _score(model, windows: list[np.ndarray], tokenizer, seq: int, device: str = "cpu", batch: int = 8) -> GroupScore:
    nll, count, nbytes = 0.0, 0, 0
    for i in range(0, len(windows), batch):
        w = torch.from_numpy(np.stack(windows[i:i + batch]))
        tokens, labels = w[:, :-1], w[:, 1:]
        pos = torch.arange(seq).unsqueeze(0).expand_as(tokens)
        losses = model(tokens.to(device), pos.to(device), None, labels=labels.to(device))
        nll += float(losses.double().sum())
        count += labels.numel()
        nbytes += sum(len(tokenizer.decode(x.tolist(), skip_special_tokens=False).encode()) for x in labels)
    if not count:
        return GroupScore(loss=None, ppl=None, bpb=None, tokens=0, sequences=0)
    loss = nll / count
    return GroupScore(loss=loss, ppl=math.exp(loss), bpb=nll / math.log(2) / max(nbytes, 1), tokens=count,
                      sequences=len(windows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    job = EvalJob.read(parser.parse_args(argv).config)
    from tokenizers import Tokenizer

    spec = job.spec
    device = init_distributed(1, 1, job.seed)
    model = build_model(spec, bf16=False, attention="sdpa", recompute="none")  # fp32 scoring, even of a bf16 model
    checkpoint.load(job.checkpoint, model, manifest_sha=job.checkpoint_manifest)
    model.eval()
    tokenizer = Tokenizer.from_str(read_verified(job.tokenizer, job.tokenizer_sha256, "tokenizer").decode())
    groups = {name: _score(model, _windows(prefixes, spec.seq_length, job.max_sequences), tokenizer,
                           spec.seq_length, device)
              for name, prefixes in job.groups.items()}

    from model.hf_export import export

    hf = export(model.state_dict(), spec, job.eod, job.hf_dir)  # a CPU model, whatever the device here
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
    write(EvalOutput(groups=groups, hf_dir=job.hf_dir, max_abs_logit_diff=float((ours - theirs).abs().max()),
                     generations=gens), job.result_path)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
