"""MLflow pyfunc model (models-from-code): loads the exported Hugging Face weights + tokenizer and generates.

Artifacts: `hf` (config.json + model.safetensors + tokenizer files), `tokenizer` (tokenizer.json). No pickled live
objects: the model is rebuilt from files at load time. Input: a list of prompts, or a DataFrame with a `prompt`
column. Params (the signature's params schema, so MLflow passes them through): `max_new_tokens` (1 up to the
context length less one token), `temperature` (0: greedy), `top_p`, `seed`, `stop` (strings that end a
completion; the text from the first one on is cut).
"""
from __future__ import annotations

from typing import Any

import mlflow

DEFAULT_PARAMS = {"max_new_tokens": 32, "temperature": 0.0, "top_p": 1.0, "seed": 0, "stop": ["<|endoftext|>"]}
"""The params schema (types and defaults), from the input example the model is logged with."""
INPUT_EXAMPLE = (["A buffer overflow occurs when"], DEFAULT_PARAMS)


def _context_length(config) -> int:
    return int(getattr(config, "n_positions", None) or config.max_position_embeddings)


def check_params(params: dict[str, Any] | None, context_length: int) -> dict[str, Any]:
    """The generation settings with defaults filled in; out-of-range values are refused with the range."""
    p = {**DEFAULT_PARAMS, **{k: v for k, v in (params or {}).items() if v is not None}}
    n, t, top_p = int(p["max_new_tokens"]), float(p["temperature"]), float(p["top_p"])
    if not 1 <= n <= context_length - 1:
        raise ValueError(f"max_new_tokens = {n}: must be between 1 and {context_length - 1} (the model's context "
                         f"is {context_length} tokens)")
    if not 0 <= t <= 10:
        raise ValueError(f"temperature = {t}: must be between 0 (greedy) and 10")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p = {top_p}: must be in (0, 1]")
    stop = p["stop"]
    return {"max_new_tokens": n, "temperature": t, "top_p": top_p, "seed": int(p["seed"]),
            "stop": [stop] if isinstance(stop, str) else [str(s) for s in stop if s]}


def cut_at_stop(text: str, stop: list[str]) -> str:
    ends = [i for i in (text.find(s) for s in stop) if i >= 0]
    return text[:min(ends)] if ends else text


class KeelLM(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import torch
        from tokenizers import Tokenizer
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(max(1, torch.get_num_threads()))
        self.model = AutoModelForCausalLM.from_pretrained(context.artifacts["hf"]).eval()
        self.tokenizer = Tokenizer.from_file(context.artifacts["tokenizer"])
        self.eod = self.model.config.eos_token_id
        self.n_ctx = _context_length(self.model.config)

    def predict(self, context, model_input: list[str], params: dict[str, Any] | None = None) -> list[str]:
        import torch

        p = check_params(params, self.n_ctx)
        n, temperature = p["max_new_tokens"], p["temperature"]
        torch.manual_seed(p["seed"])
        out = []
        for prompt in model_input:
            ids = (self.tokenizer.encode(str(prompt)).ids or [self.eod])[-(self.n_ctx - n):]
            sample = {"do_sample": True, "temperature": temperature, "top_p": p["top_p"], "top_k": 0} if temperature > 0 \
                else {"do_sample": False}
            with torch.no_grad():
                gen = self.model.generate(torch.tensor([ids]), max_new_tokens=n, pad_token_id=self.eod, **sample)
            out.append(cut_at_stop(self.tokenizer.decode(gen[0, len(ids):].tolist(), skip_special_tokens=False),
                                   p["stop"]))
        return out


mlflow.models.set_model(KeelLM())
