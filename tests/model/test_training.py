"""megatron-core training on CPU/gloo: TP/PP parity from one checkpoint, kill -9 + resume reproduces the curve."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from model.job import DataBlend, TrainJob, write
from tasks.core.jobs import kill_tree
from tasks.train.config import ModelConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list[str]:
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    d = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    prefixes = []
    for name in ("general", "domain"):
        b = IndexedDatasetBuilder(str(d / f"{name}.bin"), dtype=np.uint16)
        for _ in range(150):
            ids = np.append(rng.integers(1, 200, rng.integers(20, 200)), 0).astype(np.int64)
            b.add_document(torch.from_numpy(ids), [len(ids)])
        b.finalize(str(d / f"{name}.idx"))
        prefixes.append(str(d / name))
    return prefixes


def _config(tmp: Path, name: str, shards, tp=1, pp=1, steps=4, save_interval=0, spec_over=None) -> Path:
    spec = ModelConfig(preset="tiny", seq_length=32, num_layers=4, **(spec_over or {})).spec(256)
    out = tmp / name
    job = TrainJob(spec=spec, tensor_parallel=tp, pipeline_parallel=pp, steps=steps, micro_batch_size=2,
                   global_batch_size=8, lr=3e-3, min_lr=3e-4, warmup_steps=1, weight_decay=0.1, clip_grad=1.0,
                   save_interval=save_interval, save_interval_s=0, keep_checkpoints=0, attention="sdpa",
                   recompute="none", distributed_optimizer=False, overlap_grad_reduce=False, bf16=False,
                   bf16_on_cpu=False, seed=3, data=DataBlend(prefixes=list(shards), weights=[0.5, 0.5], identity="keel"),
                   eod=0, tokenizer_vocab=256, out_dir=str(out), init_from="", init_from_manifest="", metrics_path=f"{out}.metrics.jsonl",
                   result_path=f"{out}.result.json", heartbeat_dir=f"{out}.heartbeat", stopped_path=f"{out}.stopped.json",
                   fence_path="", fence_token="", skip_final_checkpoint=False)
    return Path(write(job, tmp / f"{name}.json"))


def _cmd(cfg: Path, nproc: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "model.train", "--config", str(cfg)]


def _run(cfg: Path, nproc: int) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(_cmd(cfg, nproc), capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _losses(cfg: Path) -> dict[int, float]:
    lines = Path(json.loads(cfg.read_text())["metrics_path"]).read_text().splitlines()
    return {m["step"]: m["loss"] for m in map(json.loads, lines)}


def _copy_checkpoint(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)


def test_tp2_pp2_matches_tp1_pp1_from_the_same_checkpoint(tmp_path, shards):
    seed_cfg = _config(tmp_path, "seed", shards, steps=4, save_interval=1)
    _run(seed_cfg, 1)  # checkpoints at steps 1..4; continue both layouts from step 1
    for name in ("tp1", "tp2pp2"):
        _resume_from(tmp_path / "seed", tmp_path / name, 1)
    a = _config(tmp_path, "tp1", shards, steps=4)
    b = _config(tmp_path, "tp2pp2", shards, tp=2, pp=2, steps=4)
    _run(a, 1)
    _run(b, 4)
    la, lb = _losses(a), _losses(b)
    assert sorted(la) == sorted(lb) == [2, 3, 4]
    for step in la:
        assert abs(la[step] - lb[step]) < 1e-5, (step, la[step], lb[step])
    assert la == pytest.approx({s: v for s, v in _losses(seed_cfg).items() if s > 1}, abs=1e-5)


def test_kill_9_mid_run_then_resume_reproduces_the_loss_curve(tmp_path, shards):
    # with dropout on, the resumed curve matches only if every RNG (torch, the model-parallel tracker) is restored
    drop = {"hidden_dropout": 0.1, "attention_dropout": 0.1}
    full = _config(tmp_path, "full", shards, steps=40, save_interval=10, spec_over=drop)
    _run(full, 1)
    killed = _config(tmp_path, "killed", shards, steps=40, save_interval=10, spec_over=drop)
    metrics = Path(json.loads(killed.read_text())["metrics_path"])
    proc = subprocess.Popen(_cmd(killed, 1), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"}, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 15):
        time.sleep(0.05)
    kill_tree(proc.pid)  # kill -9 the launcher and every worker
    proc.wait()
    from model.checkpoint import newest_valid_step

    latest = newest_valid_step(tmp_path / "killed")
    assert latest in (10, 20, 30), latest  # killed mid-run, after at least one complete checkpoint
    _run(killed, 1)  # resumes from the latest complete checkpoint
    resumed = json.loads(Path(json.loads(killed.read_text())["result_path"]).read_text())
    assert resumed["resumed_from"] == latest
    lines = [json.loads(x) for x in metrics.read_text().splitlines()]
    after = {m["step"]: m["loss"] for m in lines[[m["step"] for m in lines].index(resumed["resumed_from"] + 1):]}
    ref = _losses(full)
    assert after and all(abs(after[s] - ref[s]) < 1e-6 for s in after), (after, ref)


@pytest.mark.parametrize("over", [{"position_embedding": "rope", "normalization": "RMSNorm", "swiglu": True,
                                   "tie_embeddings": False}, {"num_experts": 4}])
def test_architecture_options_train(tmp_path, shards, over):
    cfg = _config(tmp_path, "opt", shards, steps=3, spec_over=over)
    _run(cfg, 1)
    losses = _losses(cfg)
    assert len(losses) == 3 and all(np.isfinite(list(losses.values())))
    rows = [json.loads(x) for x in Path(json.loads(cfg.read_text())["metrics_path"]).read_text().splitlines()]
    assert all(0.05 < r["max_rss_gib"] < 64 and r["grad_norm"] > 0 and r["lr"] > 0 for r in rows), rows


def test_bf16_trains_checkpoints_resumes_exactly_and_loads_into_fp32_evaluation(tmp_path, shards):
    """The GPU precision path (Float16Module, fp32 main weights in the optimizer), exercised on CPU."""
    runs = {}
    for name in ("full", "resumed"):
        cfg = _config(tmp_path, name, shards, steps=4, save_interval=2)
        data = json.loads(cfg.read_text())
        data.update(bf16=True, bf16_on_cpu=True)
        cfg.write_text(json.dumps(data))
        runs[name] = cfg
    _run(runs["full"], 1)
    (tmp_path / "resumed").mkdir()
    _copy_checkpoint(tmp_path / "full" / "iter_0000002", tmp_path / "resumed" / "iter_0000002")
    (tmp_path / "resumed" / "latest").write_text("2")
    _run(runs["resumed"], 1)
    full, resumed = _losses(runs["full"]), _losses(runs["resumed"])
    assert sorted(resumed) == [3, 4] and all(resumed[s] == full[s] for s in resumed), (full, resumed)
    probe = Path(__file__).with_name("bf16_probe.py")
    proc = subprocess.run([sys.executable, str(probe), str(runs["full"]), str(tmp_path / "full" / "iter_0000004")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded["trained_dtype"] == "torch.bfloat16" and loaded["eval_dtype"] == "torch.float32"
    assert loaded["equal_to_bf16_weights"] and loaded["changed_from_init"]


def _with_train(cfg: Path, **train) -> Path:
    """Change job fields (`nproc` is torchrun's, not the job's: _run takes it)."""
    data = json.loads(cfg.read_text())
    data.update({k: v for k, v in train.items() if k != "nproc"})
    cfg.write_text(json.dumps(data))
    return cfg


def _resume_from(src: Path, dst: Path, step: int) -> None:
    dst.mkdir()
    name = f"iter_{step:07d}"
    _copy_checkpoint(src / name, dst / name)
    (dst / "latest").write_text(str(step))


def test_distributed_optimizer_matches_plain_and_resumes_exactly_across_dp_sizes(tmp_path, shards):
    plain = _config(tmp_path, "plain", shards, steps=4)
    _run(plain, 1)
    dist = _with_train(_config(tmp_path, "dist", shards, steps=4, save_interval=2), nproc=2, distributed_optimizer=True)
    _run(dist, 2)
    ref, got = _losses(plain), _losses(dist)
    assert all(abs(ref[s] - got[s]) < 1e-5 for s in ref), (ref, got)  # DP=2 ZeRO-1 == DP=1 plain Adam
    resumed = _with_train(_config(tmp_path, "resumed", shards, steps=4, save_interval=2), nproc=2,
                          distributed_optimizer=True)
    _resume_from(tmp_path / "dist", tmp_path / "resumed", 2)
    _run(resumed, 2)
    again = _losses(resumed)
    assert sorted(again) == [3, 4] and all(again[s] == got[s] for s in again), (got, again)
    dp1 = _with_train(_config(tmp_path, "dp1", shards, steps=4), distributed_optimizer=True)
    _resume_from(tmp_path / "dist", tmp_path / "dp1", 2)
    _run(dp1, 1)  # another data-parallel size: optimizer state resharded
    assert all(abs(_losses(dp1)[s] - got[s]) < 1e-5 for s in (3, 4))
    for name, train in (("tp2", {"nproc": 2, "tensor_parallel": 2, "distributed_optimizer": True}),
                        ("to_plain", {"nproc": 2})):
        cfg = _with_train(_config(tmp_path, name, shards, steps=4), **train)
        _resume_from(tmp_path / "dist", tmp_path / name, 2)
        proc = subprocess.run(_cmd(cfg, 2), capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
        assert proc.returncode != 0
        expected = "not another TP/PP layout" if name == "tp2" else "set distributed_optimizer = true"
        assert expected in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-2000:]


def test_overlapped_grad_reduce_gives_the_same_losses(tmp_path, shards):
    """PP=2 x DP=2: gradient all-reduce overlapped with backward (held back until the last micro-batch)."""
    runs = {}
    for overlap in (False, True):
        cfg = _with_train(_config(tmp_path, f"overlap_{overlap}", shards, pp=2, steps=3), nproc=4,
                          overlap_grad_reduce=overlap, distributed_optimizer=overlap)
        _run(cfg, 4)
        runs[overlap] = _losses(cfg)
    assert len(runs[True]) == 3 and all(abs(runs[True][s] - runs[False][s]) < 1e-5 for s in runs[False]), runs


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the benchmark measures (tests/model/test_gpu.py)")
def test_mfu_benchmark_skips_cleanly_without_a_gpu():
    from tests.conftest import REPO

    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "train_mfu.py"), "--preset", "1.3b"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["skipped"] is True and out["preset"] == "1.3b" and out["mfu"] is None


def test_a_trained_llama_style_model_exports_and_loads_with_plain_transformers(tmp_path, shards):
    """RoPE, RMSNorm, SwiGLU, grouped-query attention, untied embeddings: trained, scored and exported by the
    evaluate entry point, then loaded with AutoModelForCausalLM / AutoTokenizer alone."""
    import hashlib

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from model.job import EvalJob, EvalOutput, TrainJob

    over = {"position_embedding": "rope", "normalization": "RMSNorm", "swiglu": True, "tie_embeddings": False,
            "num_query_groups": 2}
    cfg = _config(tmp_path, "llama", shards, steps=3, spec_over=over)
    _run(cfg, 1)
    words = ["<|endoftext|>", "a", "buffer", "overflow", "occurs", "when"] + [f"w{i}" for i in range(250)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    train = TrainJob.read(cfg)
    out = json.loads(Path(train.result_path).read_text())
    job = EvalJob(spec=train.spec, checkpoint=out["checkpoint"], checkpoint_manifest="",
                  tokenizer=str(tmp_path / "tokenizer.json"),
                  tokenizer_sha256=hashlib.sha256((tmp_path / "tokenizer.json").read_bytes()).hexdigest(),
                  groups={"general": [shards[0]], "domain": [shards[1]]}, max_sequences=4, eod=0,
                  hf_dir=str(tmp_path / "hf"), prompts=["a buffer overflow occurs when"], max_new_tokens=3, seed=0,
                  result_path=str(tmp_path / "eval.json"), tasks_dir="", task_names=[])
    write(job, tmp_path / "eval_job.json")
    proc = subprocess.run([sys.executable, "-m", "model.evaluate", "--config", str(tmp_path / "eval_job.json")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = EvalOutput.read(tmp_path / "eval.json")
    assert res.max_abs_logit_diff <= 1e-4 and res.groups["domain"].ppl
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf"))
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.num_key_value_heads == 2
    assert not model.config.tie_word_embeddings
    hf_tok = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    ids = hf_tok("a buffer overflow occurs when")["input_ids"]
    assert ids == tok.encode("a buffer overflow occurs when").ids == [1, 2, 3, 4, 5]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, 5, model.config.vocab_size) and torch.isfinite(logits).all()
