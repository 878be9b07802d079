"""Downstream tasks from held-out documents, run offline by lm-evaluation-harness on an exported model."""
import json

import pytest

from tasks.evaluate.downstream import (CHOICES, HeldoutDoc, build_tasks, item_texts, task_name, write_jsonl,
                                       write_task_folder)

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa".split()


def _doc(i: int, domain: str, named: bool = True) -> HeldoutDoc:
    body = " ".join(f"{WORDS[(i * 7 + k) % len(WORDS)]}{i}x{k % 13}" for k in range(300))
    title = f"CWE-{i}: Weakness number {i}\n\n" if named else ""
    return HeldoutDoc(doc_id=f"d{i:03d}", domain=domain, text=title + body)


def test_items_hold_the_true_answer_at_the_label_and_distractors_from_other_documents():
    docs = [_doc(i, "cyber") for i in range(8)] + [_doc(i, "general", named=False) for i in range(8, 14)]
    tasks = build_tasks(docs, max_items=50, seed=3)
    assert set(tasks) == {task_name("cyber", "continuation"), task_name("cyber", "name"),
                          task_name("general", "continuation")}  # no first-line names in the general documents
    assert tasks == build_tasks(list(reversed(docs)), max_items=50, seed=3)  # deterministic, order-free
    text = {d.doc_id: d.text for d in docs}
    for name, (domain, kind, items) in tasks.items():
        assert 0 < len(items) <= 50 and all(len(it["choices"]) == CHOICES for it in items)
        labels = {it["label"] for it in items}
        assert len(labels) > 1  # the right answer is not always in the same place
        for it in items:
            gold = it["choices"][it["label"]]
            own = " ".join(text[it["doc_id"]].split())
            assert it["sources"][0] == it["doc_id"] and len(set(it["sources"])) == CHOICES
            for i, c in enumerate(it["choices"]):  # every choice's text names the document it came from
                assert any(c in " ".join(text[d].split()) for d in it["sources"]), (c, it["sources"])
            if kind == "continuation":
                assert f"{it['context']} {gold}" in own  # the passage and its true continuation
                assert all(c not in own for i, c in enumerate(it["choices"]) if i != it["label"])
            else:
                assert own.startswith(gold) and it["context"].endswith("\nName:")
    cyber_items = tasks[task_name("cyber", "continuation")][2]
    assert item_texts(cyber_items)[0].startswith(cyber_items[0]["context"])


def test_lm_eval_scores_the_tasks_offline_on_an_exported_model(tmp_path, monkeypatch):
    """The task YAML + JSONL run in lm-evaluation-harness against a Hugging Face folder written the way the
    evaluate stage writes it (weights + tokenizer), with the hub switched off."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel

    from model.evaluate import run_tasks
    from model.hf_export import save_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    docs = [_doc(i, "cyber") for i in range(6)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator([d.text for d in docs], trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(tmp_path / "tokenizer.json"))
    hf = tmp_path / "hf"
    import torch

    torch.manual_seed(0)  # the untrained model's weights, so its scores, do not depend on what ran before
    GPT2LMHeadModel(GPT2Config(vocab_size=400, n_positions=256, n_embd=32, n_layer=1, n_head=2, eos_token_id=0,
                               bos_token_id=0)).save_pretrained(hf)
    save_tokenizer(tmp_path / "tokenizer.json", hf, 256, "<|endoftext|>")
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(hf).encode("alpha0x1 bravo1x2") == tok.encode("alpha0x1 bravo1x2").ids

    tasks = build_tasks(docs, max_items=12, seed=0)
    files = {}
    for name, (_, _, items) in tasks.items():
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_bytes(write_jsonl(items))
    folder = write_task_folder(files, tmp_path / "tasks")
    scores = run_tasks(str(hf), str(folder), sorted(tasks), "cpu", seed=0)
    assert set(scores) == set(tasks)
    for name, s in scores.items():
        assert s.items == len(tasks[name][2]) and 0 <= s.acc <= 1
        assert s.acc_stderr > 0 if 0 < s.acc < 1 else s.acc_stderr == 0  # all right or all wrong: no spread
    assert json.loads(files[sorted(tasks)[0]].read_text().splitlines()[0])["choices"]
