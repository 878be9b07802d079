import json

from flows.cli import main
from flows.doctor import checks


def test_doctor_passes_on_this_environment_and_names_fixes(tmp_path, capsys):
    results = {r["check"]: r for r in checks(str(tmp_path / "runs"))}
    assert results["package prefect"]["ok"] and results["package megatron-core"]["detail"] == "0.16.1"
    assert results["storage"]["ok"]
    import torch

    kernels = results["attention kernels"]["detail"]
    assert "scaled_dot_product_attention" in kernels or "Transformer Engine" in kernels
    assert ("FlashAttention" in kernels) == (torch.cuda.is_available() and "Transformer Engine" not in kernels)
    bad = {r["check"]: r for r in checks(str(tmp_path), "http://127.0.0.1:9/")}
    assert not bad["mlflow server"]["ok"] and "keel up" in bad["mlflow server"]["fix"]
    code = main(["doctor", "--output-root", str(tmp_path / "r"), "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == (0 if all(r["ok"] for r in out) else 1)
