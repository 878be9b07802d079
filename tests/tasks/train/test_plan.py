"""The token-budget planner on known inputs."""
import pytest

from tasks.tokenize.bpe import TokenizerInfo
from tasks.tokenize.ledger import LedgerInfo
from tasks.tokenize.stage import Dataset, TokenizeResult
from tasks.train.config import ModelConfig, TrainConfig
from tasks.train.plan import PlanConfig, PlanSettings, plan


def _tokenized(*rows) -> TokenizeResult:
    ds = tuple(Dataset(source_id=s, domain=d, license="MIT", split=sp, prefix=f"tokenize/h/datasets/{s}_{sp}",
                       num_docs=1, num_tokens=t, num_words=w, max_token_id=1) for s, d, sp, t, w in rows)
    tok = TokenizerInfo(path="tokenize/h/tokenizer.json", sha256="x", vocab_size=500, eod=0, sample_docs=0,
                        sample_chars=0, loaded_from="")
    return TokenizeResult(tokenizer=tok, datasets=ds, doc_index="", tokens_by_split={}, encoders=(),
                          ledger=LedgerInfo("", "", 0, {}, {}), counts=None)


def test_planner_numbers_on_known_inputs():
    tok = _tokenized(("g", "general", "train", 10_000, 8_000), ("c1", "cyber", "train", 3_000, 2_000),
                     ("c2", "cyber", "train", 1_000, 700), ("g", "general", "test", 999, 999))
    model = ModelConfig(preset="tiny", seq_length=63)
    spec = model.spec(tok.vocab_size)
    n = spec.num_params()
    cfg = PlanSettings(PlanConfig(min_words_per_param=10, max_epochs=0.5), model,
                       {"specialize": TrainConfig(steps=10, global_batch_size=8, mix={"cyber": 0.5, "general": 0.5})})
    figures, rows, warnings = plan(cfg, tok)
    assert figures["params"] == n and figures["unique_train_tokens"] == 14_000 and figures["unique_train_words"] == 10_700
    assert figures["training_tokens"] == 10 * 8 * 64 and figures["flops"] == 6.0 * n * 5120
    by = {r.source_id: r for r in rows}
    assert by["g"].share == 0.5 and by["c1"].share == pytest.approx(0.375)
    assert by["c2"].epochs == pytest.approx(5120 * 0.125 / 1000)
    assert any("model too large" in w for w in warnings)
    assert any("c2 would be repeated 0.6 epochs" in w for w in warnings)
    assert not any("source g " in w for w in warnings)
