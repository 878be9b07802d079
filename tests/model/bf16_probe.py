"""Run in a fresh process: build the bf16 training model and the fp32 evaluation model, load one bf16 checkpoint
into both, and report dtypes and whether the fp32 weights equal the bf16 ones (and differ from initialisation)."""
import json
import sys

import torch


def main(config: str, ckpt: str) -> None:
    from model import checkpoint
    from model.gpt import build_model, init_distributed
    from model.presets import ModelSpec

    spec = ModelSpec(**json.load(open(config))["spec"])
    init_distributed(1, 1, seed=0)
    trained = build_model(spec, bf16=True, attention="sdpa", recompute="none")
    evaluation = build_model(spec, bf16=False, attention="sdpa", recompute="none")
    init = evaluation.embedding.word_embeddings.weight.detach().clone()
    checkpoint.load(ckpt, trained)
    checkpoint.load(ckpt, evaluation)
    a = trained.module.embedding.word_embeddings.weight
    b = evaluation.embedding.word_embeddings.weight
    print(json.dumps({"trained_dtype": str(a.dtype), "eval_dtype": str(b.dtype),
                      "equal_to_bf16_weights": bool(torch.equal(a.float(), b)),
                      "changed_from_init": not torch.equal(init, b)}))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
