"""The registered pyfunc: a signature with a params schema (max_new_tokens bounded, temperature, top_p, seed,
stop), type hints, prompts as a list or a DataFrame column; the README's call works without a warning."""
import pandas as pd
import pytest

from model.serving import check_params, cut_at_stop


def _hf_folder(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel

    from model.hf_export import save_tokenizer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator(["A buffer overflow occurs when a program writes past the end of a buffer."] * 50,
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(tmp_path / "tokenizer.json"))
    import torch

    torch.manual_seed(0)  # a fixed random model: greedy completions are the same on every run
    GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=64, n_embd=32, n_layer=1, n_head=2, eos_token_id=0,
                               bos_token_id=0)).save_pretrained(tmp_path / "hf")
    save_tokenizer(tmp_path / "tokenizer.json", tmp_path / "hf", 64, "<|endoftext|>")
    return tok


def test_params_are_checked_and_stop_strings_cut():
    assert check_params(None, 64)["max_new_tokens"] == 32
    assert check_params({"max_new_tokens": 63, "stop": "x"}, 64)["stop"] == ["x"]
    for bad in ({"max_new_tokens": 64}, {"max_new_tokens": 0}, {"temperature": -1}, {"top_p": 0}):
        with pytest.raises(ValueError, match="must be"):
            check_params(bad, 64)
    assert cut_at_stop("one. two\n\nthree", ["\n\n", "two"]) == "one. "


def test_logged_model_takes_its_params_and_returns_what_they_ask(tmp_path, capfd):
    import mlflow

    from tasks.track.register import SERVING
    from tasks.track.tracking import Tracker
    from model.serving import INPUT_EXAMPLE

    tok = _hf_folder(tmp_path)
    t = Tracker(f"sqlite:///{tmp_path}/mlflow.db", "serving-test", run_name="r")
    info = t.log_pyfunc_model(str(SERVING), {"hf": str(tmp_path / "hf"), "tokenizer": str(tmp_path / "tokenizer.json")},
                              name="model", registered="serving-test", pip_requirements=["torch"],
                              input_example=INPUT_EXAMPLE)
    from tasks.track.tracking import MANIFEST_TAG, load_verified, manifest_tag

    t.tag_version("serving-test", info["version"], {MANIFEST_TAG: manifest_tag(info["manifest"])})
    t.end("FINISHED")
    lm = load_verified(f"sqlite:///{tmp_path}/mlflow.db", f"serving-test:{info['version']}")
    # the README's snippet, in a fresh process in another folder (MLflow's default store would be ./mlflow.db there)
    import subprocess
    import sys

    from tasks.track.register import SERVING as _serving

    snippet = ("from tasks.track.tracking import load_verified\n"
               f"lm = load_verified('sqlite:///{tmp_path}/mlflow.db', 'serving-test:{info['version']}')\n"
               "print(repr(lm.predict(['A buffer overflow occurs when'], params={'max_new_tokens': 3})))")
    (tmp_path / "elsewhere").mkdir()
    # a folder where MLflow has run before: its ./mlflow.db is the process's default store there
    mlflow.MlflowClient(f"sqlite:///{tmp_path}/elsewhere/mlflow.db").search_experiments()
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path / "elsewhere", capture_output=True, text=True,
                          timeout=300, env={**{k: v for k, v in __import__("os").environ.items() if not k.startswith("MLFLOW_")},
                               "PYTHONPATH": str(_serving.parents[1])})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().startswith("['")
    assert "warning" not in proc.stderr.lower(), proc.stderr[-2000:]  # the README's call, as a user sees it
    schema = {p.name: p.dtype.name for p in lm.metadata.get_params_schema().params}
    assert schema == {"max_new_tokens": "long", "temperature": "double", "top_p": "double", "seed": "long",
                      "stop": "string"}
    prompt = ["A buffer overflow occurs when"]
    lengths = {}
    for n in (2, 12):
        out = lm.predict(prompt, params={"max_new_tokens": n, "stop": []})
        assert len(out) == 1 and isinstance(out[0], str)
        lengths[n] = len(tok.encode(out[0]).ids)
    assert lengths[2] <= 2 < lengths[12] <= 12  # different max_new_tokens, different lengths
    frame = lm.predict(pd.DataFrame({"prompt": prompt * 2}), params={"max_new_tokens": 12, "stop": []})
    assert frame == lm.predict(prompt * 2, params={"max_new_tokens": 12, "stop": []})  # greedy: deterministic
    sampled = [lm.predict(prompt, params={"max_new_tokens": 12, "temperature": 1.0, "seed": s, "stop": []})[0]
               for s in (0, 0, 1)]
    assert sampled[0] == sampled[1]  # seeded
    with pytest.raises(Exception, match="max_new_tokens"):
        lm.predict(prompt, params={"max_new_tokens": 500})
    err = capfd.readouterr().err
    assert "Ignoring provided params" not in err and "type hint" not in err, err[-2000:]
