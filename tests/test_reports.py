"""The training summary artifact: per stage, loss, throughput, MFU and peak memory (GPU when measured, else host)."""
from types import SimpleNamespace

from flows.pipeline import training_markdown
from tasks.tracking import NoopTracker


def _row(step, loss, **extra):
    return {"step": step, "loss": loss, "tokens_per_s": 1000.0 * step, **extra}


def test_training_summary_reports_loss_throughput_mfu_and_memory():
    ctx = SimpleNamespace(
        tracker=NoopTracker(), status={"pretrain": "completed", "specialize": "cached"},
        summaries={"pretrain": {"metrics": [_row(1, 5.5, max_rss_gib=0.5), _row(2, 5.0, max_rss_gib=0.75),
                                            _row(3, 4.5, max_rss_gib=0.7)]},
                   "specialize": {"metrics": [_row(1, 4.0, mfu=0.41, max_memory_gib=30.0, max_rss_gib=3.0),
                                              _row(2, 3.9, mfu=0.43, max_memory_gib=31.5, max_rss_gib=3.0)]}})
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in training_markdown(ctx).splitlines() if line.startswith("| pretrain") or line.startswith("| specialize")}
    assert lines["pretrain"] == ["3", "5.5000", "4.5000", "2,500", "n/a", "0.75 GiB host", "completed"]
    assert lines["specialize"] == ["2", "4.0000", "3.9000", "2,000", "43.0%", "31.5 GiB GPU", "cached"]
    assert training_markdown(SimpleNamespace(tracker=NoopTracker(), status={}, summaries={})) == ""
