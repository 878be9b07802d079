"""The training summary artifact: per stage, loss, throughput, MFU and peak memory (GPU when measured, else host)."""
from flows.publish import training_markdown
from model.presets import ModelSpec
from tasks.track.tracking import NoopTracker
from tasks.train.mix import RealizedMix
from tasks.train.stage import StepMetrics, TrainResult


def _step(step, loss, **extra):
    return StepMetrics(step=step, loss=loss, lr=1e-3, grad_norm=1.0, tokens_per_s=1000.0 * step, step_time_s=1.0,
                       skipped=False, tflops_per_gpu=0.1, **extra)


def _trained(*metrics):
    return TrainResult(checkpoint="pretrain/h/checkpoints/iter_0000003", checkpoint_manifest="0" * 64, spec=ModelSpec(1, 8, 2), final_loss=1.0,
                       steps=len(metrics), num_params=1, world_size=1, metrics=tuple(metrics),
                       realized_mix=RealizedMix(1, 1, {}, {}), planned_mix={}, job="pretrain/h/pretrain.json")


def test_training_summary_reports_loss_throughput_mfu_and_memory():
    results = {"pretrain": _trained(_step(1, 5.5, max_rss_gib=0.5), _step(2, 5.0, max_rss_gib=0.75),
                                    _step(3, 4.5, max_rss_gib=0.7)),
               "specialize": _trained(_step(1, 4.0, mfu=0.41, max_memory_gib=30.0, max_rss_gib=3.0),
                                      _step(2, 3.9, mfu=0.43, max_memory_gib=31.5, max_rss_gib=3.0))}
    md = training_markdown(results, {"pretrain": "completed", "specialize": "cached"}, NoopTracker())
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in md.splitlines() if line.startswith("| pretrain") or line.startswith("| specialize")}
    assert lines["pretrain"] == ["3", "5.5000", "4.5000", "2,500", "n/a", "0.75 GiB host", "completed"]
    assert lines["specialize"] == ["2", "4.0000", "3.9000", "2,000", "43.0%", "31.5 GiB GPU", "cached"]
    assert training_markdown({}, {}, NoopTracker()) == ""
