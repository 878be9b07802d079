"""`keel inspect`: a recipe's curation rules on a JSONL sample; every input line comes back with what the pipeline
would do and every signal, also for documents an earlier rule rejects."""
import json

from flows.cli import main
from tests.conftest import REPO

ENGLISH = ("The quick brown fox jumps over the lazy dog. This is an ordinary English paragraph about foxes and dogs, "
           "long enough for the quality rules to take it for a real document with many words in it. ")


def test_inspect_writes_every_document_with_its_verdict_and_signals(tmp_path, capsys):
    src, dst = tmp_path / "sample.jsonl", tmp_path / "out.jsonl"
    lines = [json.dumps({"id": "en", "text": ENGLISH + "Mail jane.doe@corp.example.net or call 555-123-4567."}),
             json.dumps({"id": "de", "text": "Der schnelle braune Fuchs springt über den faulen Hund. " * 4}),
             "{broken json",
             json.dumps({"doc_id": 7, "text": "Version 4.12.7.3 fixes CVE-2021-44228. " * 6}),
             json.dumps({"id": "abuse", "text": ENGLISH + "Fuck you, you worthless piece of shit."}),
             json.dumps({"id": "notext", "body": "x"})]
    src.write_text("\n".join(lines) + "\n\n")
    assert main(["inspect", "--recipe", str(REPO / "infra/recipes/demo.toml"), "--input", str(src),
                 "--output", str(dst), "--json"]) == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    out = {r["id"]: r for r in map(json.loads, dst.read_text().splitlines())}
    assert counts["documents"] == len(out) == 6 and counts["kept"] == sum(r["kept"] for r in out.values())
    assert out["en"]["kept"] and out["en"]["text"].endswith("Mail <EMAIL> or call <PHONE>.")
    assert out["en"]["pii_email"] == 1 and out["en"]["lang"] == "en" and 0 <= out["en"]["hap_score"] < 0.5
    de = out["de"]
    assert not de["kept"] and de["reject_step"] == "language" and de["reject_reason"] == "language_de"
    assert "hap_score" in de and de["pii_ipv4"] == 0  # later rules' signals for a rejected document too
    assert out["line-3"]["reject_step"] == "read" and "line 3" in out["line-3"]["reject_reason"]
    assert out["line-6"]["reject_step"] == "read" and "text" in out["line-6"]["reject_reason"]
    assert out["7"]["pii_ipv4"] == 0 and "4.12.7.3" in out["7"]["text"]  # a version is not an address
    assert not out["abuse"]["kept"] and out["abuse"]["reject_step"] == "hap" and out["abuse"]["hap_score"] >= 0.99
    assert set(counts["not_applied"]) >= {"exact_dedup", "near_dedup"}
