"""What a registered version says about itself: a markdown model card and a Croissant 1.1 (JSON-LD, with its
Responsible-AI fields) description of the data it was trained on, both built from the stages' typed results
(sources and licences from the legal gate, tokens per source/licence and the ledger from tokenize, the curation
funnel, contract results, evaluation and the gate decision). Pure functions; the register stage attaches both
to the version's model folder and to its run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from tasks.curate.stage import CurateResult
from tasks.evaluate.gate import ChampionDecision
from tasks.evaluate.stage import EvaluateResult
from tasks.govern.legal import LegalResult
from tasks.tokenize.stage import TokenizeResult

CROISSANT_CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/", "prov": "http://www.w3.org/ns/prov#",
    "citeAs": "cr:citeAs", "column": "cr:column", "conformsTo": "dct:conformsTo",
    "data": {"@id": "cr:data", "@type": "@json"}, "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "examples": {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract", "field": "cr:field",
    "fileObject": "cr:fileObject", "fileProperty": "cr:fileProperty", "fileSet": "cr:fileSet",
    "format": "cr:format", "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset", "jsonPath": "cr:jsonPath",
    "key": "cr:key", "md5": "cr:md5", "parentField": "cr:parentField", "path": "cr:path",
    "recordSet": "cr:recordSet", "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated",
    "replace": "cr:replace", "separator": "cr:separator", "source": "cr:source", "subField": "cr:subField",
    "transform": "cr:transform",
}
LEDGER_FIELDS = (("doc_id", "sc:Text", "Stable document id (hash of source and native id)."),
                 ("source_id", "sc:Text", "The source the document came from (a reviewed source manifest)."),
                 ("license", "sc:Text", "SPDX id (or LicenseRef) of the document's licence."),
                 ("content_sha256", "sc:Text", "sha256 of the document's text as ingested."),
                 ("split", "sc:Text", "train, valid, test, or rejected (decontaminated: never trained on)."),
                 ("num_tokens", "sc:Integer", "Tokens of the document in the tokenized data (0 when rejected)."),
                 ("verdicts", "sc:Text", "The curation rules the document passed, and its rejection if any."))


@dataclass(frozen=True)
class CardInputs:
    name: str
    legal: LegalResult
    curated: CurateResult | None
    tokenized: TokenizeResult
    evaluation: EvaluateResult
    decision: ChampionDecision | None
    ledger_uri: str
    contracts: dict[str, bool]
    stage_hashes: dict[str, str]
    published: str
    """ISO date-time of the registration."""


def _funnel_rows(c: CardInputs) -> list[str]:
    rows = []
    if c.curated is not None:
        for s in c.curated.funnel:
            top = ", ".join(f"{k} {v}" for k, v in sorted(s.rejected.items(), key=lambda x: -x[1])[:3])
            rows.append(f"| {s.step} | {s.received:,} | {s.kept:,} | {top or '-'} |")
    t = c.tokenized.counts
    top = ", ".join(f"{k.removeprefix('eval_contamination:')} {v}" for k, v in
                    sorted(c.tokenized.decontaminated.items(), key=lambda x: -x[1])[:3])
    rows.append(f"| decontamination (13-gram overlap with evaluation items) | {t.received:,} | {t.kept:,} | {top or '-'} |")
    return rows


def model_card(c: CardInputs) -> str:
    ev, g, led = c.evaluation, c.evaluation.gate, c.tokenized.ledger
    sources = {m.id: m for m in c.legal.sources}
    lines = [f"# Model card: {c.name}", "",
             f"A decoder-only language model specialized on **{ev.domain}** text by keel: pretrained on general text, "
             f"then continued on a mix of {ev.domain} and general text, evaluated on held-out documents and gated "
             "against its base and the registered champion.", "",
             "## Intended use", "",
             f"Research and {c.legal.intended_use} use under the licences below (the legal gate admitted only "
             f"licences its policy allows for `{c.legal.intended_use}` use). Text generation and scoring in the "
             f"{ev.domain} domain; not for decisions about people, not a source of facts without verification.", "",
             "## Training data", "",
             "| source | domain | licence | owner | review | training tokens |", "|---|---|---|---|---|---:|"]
    for sid, m in sorted(sources.items()):
        lines.append(f"| {sid} | {m.domain} | {m.license} | {m.owner} | {m.review_status} by {m.reviewer or '-'} "
                     f"({m.review_date or '-'}) | {led.tokens_by_source.get(sid, 0):,} |")
    lines += ["", "Training tokens per licence: " + ", ".join(f"{k} {v:,}" for k, v in sorted(led.tokens_by_license.items())),
              "", f"Provenance ledger (one row per document, with its verdicts): `{c.ledger_uri}` (sha256 "
              f"`{led.sha256}`); the Croissant description of this data is `croissant.json` next to this card.", "",
              "## Curation", "", "| step | in | kept | top rejection reasons |", "|---|---:|---:|---|",
              *_funnel_rows(c), "",
              "Data contracts (Great Expectations): " + (", ".join(f"{k} {'passed' if v else 'FAILED'}"
                                                                   for k, v in sorted(c.contracts.items())) or "-"), "",
              "## Evaluation", "", "| model | " + " | ".join(f"{grp} ppl" for grp in sorted(ev.specialized.groups)) +
              " | HAP rate of generations |", "|---|" + "---:|" * (len(ev.specialized.groups) + 1)]
    for name, m in ev.models.items():
        lines.append(f"| {name} | " + " | ".join(f"{m.groups[grp].ppl:,.2f}" if m.groups.get(grp) and m.groups[grp].ppl
                                                 else "-" for grp in sorted(ev.specialized.groups)) + f" | {m.hap_rate:.3f} |")
    tasks = sorted({n for m in ev.models.values() for n in m.tasks})
    if tasks:
        lines += ["", "Downstream tasks (zero-shot multiple choice built from held-out documents, lm-evaluation-harness; "
                  "accuracy ± standard error):", "", "| task | " + " | ".join(ev.models) + " |",
                  "|---|" + "---:|" * len(ev.models)]
        lines += [f"| {t} | " + " | ".join(f"{m.tasks[t].acc:.3f} ± {m.tasks[t].acc_stderr:.3f}" if t in m.tasks else "-"
                                           for m in ev.models.values()) + " |" for t in tasks]
    lines += ["", "## Gate decision", "",
              f"Against its base: {'passed' if g.promote else 'failed'}" + (f" ({'; '.join(g.reasons)})" if g.reasons else "")
              + f"; domain ppl gain {g.domain_ppl_gain:.3f}, general ppl change {g.general_ppl_regression:+.3f}."]
    if c.decision is not None:
        lines.append(f"Champion-challenger: {'took champion' if c.decision.promote else 'did not take champion'} — "
                     + "; ".join(c.decision.reasons))
    lines += ["", "## Limitations", "",
              "- Small model and corpus: perplexities and task accuracies are for comparing versions on the same "
              "held-out data, not absolute quality.",
              "- Curation is heuristic (language id, quality rules, a HAP filter, PII redaction): some unwanted text "
              "passes and some good text is removed; generations can still contain offensive or wrong text.",
              f"- English only where the language filter is on; the {ev.domain} domain is what its sources cover.",
              "", "## Lineage", "", *[f"- {k}: `{v}`" for k, v in sorted(c.stage_hashes.items())]]
    return "\n".join(lines) + "\n"


def croissant(c: CardInputs) -> dict:
    """Croissant 1.1 JSON-LD of the training data: the ledger as the record set, sources and licences, RAI fields
    and provenance from the legal gate and curation."""
    sources = sorted(c.legal.sources, key=lambda m: m.id)
    steps = list(c.curated.steps) if c.curated else []
    pii = "PII (e-mail addresses, phone numbers, IP addresses, payment cards, IBANs, US SSNs, street addresses) was " \
          "replaced by typed placeholders such as <EMAIL> before tokenization" if "pii" in steps else \
          "No PII redaction step ran: the text may contain personal information"
    return {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": "http://mlcommons.org/croissant/1.1",
        "name": f"{c.name}-training-data",
        "description": f"The curated, tokenized text {c.name} was trained on: {len(sources)} sources, "
                       f"{c.tokenized.counts.kept:,} documents after curation and decontamination.",
        "url": c.ledger_uri,
        "license": sorted({m.license for m in sources}),
        "version": "1.0.0",
        "datePublished": c.published,
        "citeAs": f"keel pipeline, tokenize stage {c.stage_hashes.get('tokenize', '')}",
        "keywords": sorted({m.domain for m in sources}),
        "inLanguage": ["en"],
        "distribution": [{
            "@type": "cr:FileObject", "@id": "ledger.parquet", "name": "ledger.parquet",
            "description": "Provenance ledger: one row per curated document.",
            "contentUrl": c.ledger_uri, "encodingFormat": "application/x-parquet", "sha256": c.tokenized.ledger.sha256}],
        "recordSet": [{
            "@type": "cr:RecordSet", "@id": "documents", "name": "documents", "key": {"@id": "documents/doc_id"},
            "description": "The documents and where each went.",
            "field": [{"@type": "cr:Field", "@id": f"documents/{n}", "name": n, "description": d, "dataType": t,
                       "source": {"fileObject": {"@id": "ledger.parquet"}, "extract": {"column": n}}}
                      for n, t, d in LEDGER_FIELDS]}],
        "rai:dataCollection": "; ".join(f"{m.id}: {m.name} from {m.origin} (owner {m.owner}, collected {m.collected})"
                                        for m in sources),
        "rai:dataCollectionType": ["Secondary data (existing text collections, reviewed per source)"],
        "rai:dataPreprocessingProtocol": [f"curation steps in order: {', '.join(steps) or '-'}; then exact and MinHash "
                                          "near-duplicate removal; then 13-gram decontamination against the "
                                          "evaluation items; byte-level BPE tokenization"],
        "rai:personalSensitiveInformation": [pii],
        "rai:dataBiases": ["Sources are few and domain-specific: the general text and the domain text each reflect "
                           "their sources' genre, period and authorship, not the language as a whole."],
        "rai:dataLimitations": ["English only where the language filter ran; heuristic quality and HAP filters "
                                "leave errors both ways."],
        "rai:dataUseCases": [f"Training and evaluating language models for {c.legal.intended_use} use under the "
                             "listed licences."],
        "rai:dataSocialImpact": "Text models trained on it can reproduce the sources' content and style.",
        "prov:wasDerivedFrom": [{"@id": m.data_uri or m.origin, "name": m.id, "license": m.license} for m in sources],
        "prov:wasGeneratedBy": [{"@type": "prov:Activity", "name": f"keel {stage} stage {h}"}
                                for stage, h in sorted(c.stage_hashes.items())],
    }


def croissant_json(c: CardInputs) -> str:
    return json.dumps(croissant(c), indent=1, ensure_ascii=False)
