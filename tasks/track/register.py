"""Register stage: the specialized model as an MLflow models-from-code pyfunc (HF weights + tokenizer, no pickled
live objects), with lineage tags (stage hashes, sources, licences, tokens per licence and source, ledger URI and
sha256, contracts, evaluation figures, git commit, Prefect flow run), the manifest of the stored model's files
(`keel.artifact_manifest`: what `load_verified` checks before importing anything of it), a description, the
`candidate` alias, and `champion` by champion-challenger (tasks/evaluate/gate.py `challenge`): the first version
when it passed its gate against its base; a later one only when it also beats the current champion on the same
held-out data. The decision and both sets of figures are tagged on the version (`keel.promotion.*`).

The registry is the source of truth: a version already tagged with this stage's key is reused, never duplicated,
so this stage runs every time and asks the registry (it writes no stage folder of its own).
"""
from __future__ import annotations

import datetime
import json
import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from tasks.core.stage import Runtime, StageDef
from tasks.core.storage import StageDir
from tasks.curate.stage import CurateResult
from tasks.evaluate.gate import ChampionDecision, challenge, task_tags
from tasks.evaluate.stage import EvaluateResult
from tasks.govern.legal import LegalResult
from tasks.tokenize.stage import TokenizeResult
from tasks.track.card import CardInputs, croissant_json, model_card
from tasks.track.tracking import MANIFEST_TAG, manifest_tag

SERVING = Path(__file__).resolve().parents[2] / "model" / "serving.py"


@dataclass(frozen=True)
class RegisterSettings:
    name: str
    """[run].registered_model."""
    min_gain_over_champion: float = 0.01
    """[evaluate].min_gain_over_champion."""
    max_general_regression: float = 0.1
    """[evaluate].max_general_regression (also against the champion)."""
    max_task_regression: float = 0.05
    """[evaluate].max_task_regression (also against the champion)."""


@dataclass(frozen=True)
class RegisterInputs:
    legal: LegalResult
    tokenized: TokenizeResult
    evaluation: EvaluateResult
    curated: CurateResult | None = None
    """For the model card's curation funnel."""


@dataclass(frozen=True)
class RegisterResult:
    name: str
    version: str
    aliases: tuple[str, ...]
    reused: bool
    """The registry already held this exact model (same key): nothing was logged."""
    promotion: ChampionDecision | None = None
    """Champion-challenger: whether this version took `champion`, and why (None when reused)."""


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=SERVING.parents[1]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def lineage_tags(inputs: RegisterInputs, out: StageDir, run_info: dict[str, str], mlflow_run_id: str) -> dict[str, str]:
    """The version's lineage: stage hashes, sources and licences, tokens per source and licence, the ledger,
    contracts, counts, the gate's figures, the code and the runs that made it."""
    g = inputs.evaluation.gate
    sources = inputs.legal.sources
    ledger = inputs.tokenized.ledger
    contracts = json.loads(run_info.get("contracts", "{}"))
    tags = {f"keel.stage_hash.{k}": v for k, v in json.loads(run_info.get("stage_hashes", "{}")).items()}
    tags.update({
        "keel.sources": ",".join(s.id for s in sources),
        "keel.licenses": json.dumps({s.id: s.license for s in sources}, sort_keys=True),
        "keel.domains": json.dumps({s.id: s.domain for s in sources}, sort_keys=True),
        "keel.prefect_flow_run_id": run_info.get("flow_run_id", ""),
        "keel.mlflow_run_id": mlflow_run_id,
        "keel.git_commit": git_commit(),
        "keel.contracts": "passed" if contracts and all(contracts.values()) else "unknown",
        "keel.contracts_checked": ",".join(sorted(contracts)),
        "keel.counts": run_info.get("counts", "{}"),
        "keel.gate.promote": str(g.promote).lower(),
        "keel.gate.reasons": "; ".join(g.reasons) or "all checks passed",
        "keel.ledger_uri": out.at(ledger.path), "keel.ledger_sha256": ledger.sha256,
        "keel.tokens_by_license": json.dumps(ledger.tokens_by_license, sort_keys=True),
        "keel.tokens_by_source": json.dumps(ledger.tokens_by_source, sort_keys=True),
    })
    for k in ("domain_ppl_gain", "general_ppl_regression", "hap_rate", "base_domain_ppl", "special_domain_ppl",
              "base_general_ppl", "special_general_ppl"):
        tags[f"keel.eval.{k}"] = f"{getattr(g, k):.6g}"
    tags.update(task_tags(g.special_tasks))
    tags["keel.eval.decontaminated"] = json.dumps(inputs.tokenized.decontaminated, sort_keys=True)
    return tags


def description(inputs: RegisterInputs) -> str:
    g = inputs.evaluation.gate
    return "\n".join([
        "keel specialized model.",
        "Sources: " + ", ".join(f"{s.id} ({s.license}, {s.domain})" for s in inputs.legal.sources),
        f"Domain ppl {g.base_domain_ppl:.2f} -> {g.special_domain_ppl:.2f}; "
        f"general ppl {g.base_general_ppl:.2f} -> {g.special_general_ppl:.2f}.",
        f"Gate: {'promoted to champion' if g.promote else 'not promoted: ' + '; '.join(g.reasons)}."])


def pip_requirements() -> list[str]:
    return [f"{p}=={version(p)}" for p in ("torch", "transformers", "tokenizers", "safetensors", "pandas")]


def run(cfg: RegisterSettings, inputs: RegisterInputs, out: StageDir, rt: Runtime) -> RegisterResult:
    t = rt.tracker
    found = t.find_version(cfg.name, "keel.register_hash", out.hash)
    if found is not None:
        return RegisterResult(cfg.name, str(found), tuple(t.aliases(cfg.name, found)), reused=True)
    ev = inputs.evaluation
    champion = t.alias_version(cfg.name, "champion")
    hashes = json.loads(rt.run_info.get("stage_hashes", "{}"))
    decision = challenge(ev.gate, champion, hashes.get("tokenize", ""), cfg.min_gain_over_champion,
                         cfg.max_general_regression, cfg.max_task_regression)
    card = CardInputs(name=cfg.name, legal=inputs.legal, curated=inputs.curated, tokenized=inputs.tokenized,
                      evaluation=ev, decision=decision, ledger_uri=out.at(inputs.tokenized.ledger.path),
                      contracts=json.loads(rt.run_info.get("contracts", "{}")), stage_hashes=hashes,
                      published=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    work = Path(out.local())
    work.mkdir(parents=True, exist_ok=True)
    (work / "model_card.md").write_text(model_card(card))
    (work / "croissant.json").write_text(croissant_json(card))
    artifacts = {"hf": out.fetch(ev.specialized.hf_dir), "tokenizer": out.fetch(ev.tokenizer),
                 "model_card": str(work / "model_card.md"), "croissant": str(work / "croissant.json")}
    from model.serving import INPUT_EXAMPLE

    info = t.log_pyfunc_model(str(SERVING), artifacts, name="model", registered=cfg.name,
                              pip_requirements=pip_requirements(), input_example=INPUT_EXAMPLE)
    v = info["version"]
    tags = lineage_tags(inputs, out, rt.run_info, t.run_id or "")
    tags[MANIFEST_TAG] = manifest_tag(info["manifest"])
    if rt.run_info.get("flow_run_url"):
        tags["keel.prefect_flow_run_url"] = rt.run_info["flow_run_url"]
    tags.update(promotion_tags(decision))
    tags.update({"keel.model_card": "artifacts/model_card.md", "keel.croissant": "artifacts/croissant.json"})
    t.tag_version(cfg.name, v, {**tags, "keel.register_hash": out.hash}, description(inputs))
    t.set_alias(cfg.name, "candidate", v)
    if decision.promote:
        t.set_alias(cfg.name, "champion", v)
    return RegisterResult(cfg.name, str(v), tuple(t.aliases(cfg.name, v)), reused=False, promotion=decision)


def promotion_tags(d: ChampionDecision) -> dict[str, str]:
    tags = {"keel.promotion.decision": "champion" if d.promote else "not champion",
            "keel.promotion.against": f"version {d.champion_version}" if d.champion_version else "base",
            "keel.promotion.reasons": "; ".join(d.reasons), "keel.promotion.manual": "false"}
    for k in ("champion_domain_ppl", "champion_general_ppl", "domain_gain_vs_champion", "general_change_vs_champion"):
        if getattr(d, k) is not None:
            tags[f"keel.promotion.{k}"] = f"{getattr(d, k):.6g}"
    return tags


STAGE = StageDef(name="register", run=run, result=RegisterResult, extra_code=("model.serving", "tasks.track.tracking"),
                 always_run=True)
