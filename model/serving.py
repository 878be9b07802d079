"""MLflow pyfunc model (models-from-code): loads the exported Hugging Face weights + tokenizer and generates.

Artifacts: `hf` (config.json + model.safetensors), `tokenizer` (tokenizer.json). No pickled live objects: the
model is rebuilt from files at load time. Input: a DataFrame with a `prompt` column, a list of strings or a
string; params: max_new_tokens (default 32), temperature (0 means greedy), seed.
"""
from __future__ import annotations

import mlflow
import pandas as pd


class KeelLM(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import torch
        from tokenizers import Tokenizer
        from transformers import GPT2LMHeadModel

        torch.set_num_threads(max(1, torch.get_num_threads()))
        self.model = GPT2LMHeadModel.from_pretrained(context.artifacts["hf"]).eval()
        self.tokenizer = Tokenizer.from_file(context.artifacts["tokenizer"])
        self.eod = self.model.config.eos_token_id

    def predict(self, context, model_input, params=None):
        import torch

        params = params or {}
        if isinstance(model_input, pd.DataFrame):
            prompts = model_input["prompt"].astype(str).tolist()
        elif isinstance(model_input, str):
            prompts = [model_input]
        else:
            prompts = [str(p) for p in model_input]
        max_new = int(params.get("max_new_tokens", 32))
        temperature = float(params.get("temperature", 0.0))
        torch.manual_seed(int(params.get("seed", 0)))
        n_ctx = self.model.config.n_positions
        out = []
        for p in prompts:
            ids = (self.tokenizer.encode(p).ids or [self.eod])[-(n_ctx - max_new):]
            with torch.no_grad():
                gen = self.model.generate(torch.tensor([ids]), max_new_tokens=max_new, do_sample=temperature > 0,
                                          temperature=temperature or None, top_k=40 if temperature > 0 else None,
                                          pad_token_id=self.eod)
            out.append(self.tokenizer.decode(gen[0, len(ids):].tolist()))
        return out


mlflow.models.set_model(KeelLM())
