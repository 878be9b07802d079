"""`keel promote`: a manual champion decision on a real MLflow registry (sqlite), recorded on the version."""
import json

import mlflow

from flows.cli import main


def test_manual_promotion_moves_champion_and_records_who_why_when(tmp_path, capsys, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("KEEL_USER", "alice")
    client = mlflow.MlflowClient(uri)
    client.create_registered_model("m")
    src = tmp_path / "model"
    src.mkdir()
    for _ in range(2):
        client.create_model_version("m", str(src))
    client.set_registered_model_alias("m", "champion", "1")
    assert main(["promote", "m", "2", "--reason", "better on the audit set", "--tracking-uri", uri, "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["previous_champion"] == "1" and str(client.get_model_version_by_alias("m", "champion").version) == "2"
    tags = client.get_model_version("m", "2").tags
    assert tags["keel.promotion.manual"] == "true" and tags["keel.promotion.by"] == "alice"
    assert tags["keel.promotion.reason"] == "better on the audit set" and tags["keel.promotion.previous_champion"] == "1"
    assert tags["keel.promotion.reasons"] == "manual decision by alice: better on the audit set"
    old = client.get_model_version("m", "1").tags  # the replaced champion says so
    assert old["keel.promotion.decision"] == "not champion" and old["keel.promotion.replaced_by"] == "2"
    assert main(["promote", "m", "2", "--reason", "  ", "--tracking-uri", uri]) == 2  # a reason is required
    client.set_model_version_tag("m", "1", "keel.tainted", "true")
    assert main(["promote", "m", "1", "--reason", "roll back", "--tracking-uri", uri]) == 2  # never a tainted one
    assert str(client.get_model_version_by_alias("m", "champion").version) == "2"
