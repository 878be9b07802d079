"""Register the specialized model in the MLflow registry with lineage tags, aliases and a description."""
from __future__ import annotations

import json
import subprocess
from importlib.metadata import version
from pathlib import Path


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent.parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def lineage_tags(hashes: dict, sources: list[dict], evaluation: dict, flow_run_id: str, run_id: str,
                 counts: dict, contract_ok: bool) -> dict:
    gate = evaluation["gate"]
    tags = {f"keel.stage_hash.{k}": v for k, v in hashes.items()}
    tags.update({
        "keel.sources": ",".join(s["id"] for s in sources),
        "keel.licenses": json.dumps({s["id"]: s["license"] for s in sources}, sort_keys=True),
        "keel.domains": json.dumps({s["id"]: s["domain"] for s in sources}, sort_keys=True),
        "keel.prefect_flow_run_id": flow_run_id,
        "keel.mlflow_run_id": run_id,
        "keel.git_commit": git_commit(),
        "keel.contracts": "passed" if contract_ok else "failed",
        "keel.counts": json.dumps(counts, sort_keys=True),
        "keel.gate.promote": str(gate["promote"]).lower(),
        "keel.gate.reasons": "; ".join(gate["reasons"]) or "all checks passed",
    })
    for k, v in gate.items():
        if isinstance(v, float):
            tags[f"keel.eval.{k}"] = f"{v:.6g}"
    return tags


def description(sources: list[dict], evaluation: dict) -> str:
    g = evaluation["gate"]
    lines = ["keel specialized model.",
             "Sources: " + ", ".join(f"{s['id']} ({s['license']}, {s['domain']})" for s in sources),
             f"Domain ppl {g['base_domain_ppl']:.2f} -> {g['special_domain_ppl']:.2f}; "
             f"general ppl {g['base_general_ppl']:.2f} -> {g['special_general_ppl']:.2f}.",
             f"Gate: {'promoted to champion' if g['promote'] else 'not promoted: ' + '; '.join(g['reasons'])}."]
    return "\n".join(lines)


def pip_requirements() -> list[str]:
    return [f"{p}=={version(p)}" for p in ("torch", "transformers", "tokenizers", "safetensors", "pandas")]


def serving_code_path() -> str:
    return str(Path(__file__).resolve().parent.parent / "model" / "serving.py")
