"""Typed recipe configuration: one dataclass per pipeline section, loaded from TOML, overridable, hashable.

A recipe (infra/recipes/*.toml) has one table per section below. `load_recipe(path, overrides)` returns a
validated `Recipe`; `Recipe.section_dict(name)` and `stable_hash(...)` feed the content-addressed stage paths.
This module is pure Python (no torch, no mlflow) so every layer may import it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from model.train_config import (BaselineConfig, EvaluateConfig, ModelConfig,  # noqa: F401 (re-exported)
                                PlanConfig, TrainConfig)


@dataclass
class RunConfig:
    name: str = "keel"
    """Run family name; used as the MLflow experiment name."""
    output_root: str = ".keel/runs"
    """Where stage outputs live: a local folder or an fsspec URI such as s3://bucket/prefix."""
    tracking_uri: str = ""
    """MLflow tracking URI; empty means sqlite under .keel/ (or KEEL_TRACKING_URI / a running `keel up`)."""
    registered_model: str = "keel-model"
    """Name of the model in the MLflow registry."""
    seed: int = 1234
    """Seed for every random choice (sampling, initialisation, data order)."""
    retries: int = 3
    """Stage retries on transient errors (storage or network outage, a lost Dask worker); 0 disables."""
    retry_delay_s: float = 5.0
    """First retry delay; each further retry waits twice as long (exponential backoff, with jitter)."""
    secret_blocks: list[str] = field(default_factory=list)
    """Prefect Secret blocks (JSON objects of ENV_NAME -> value) loaded into the run's environment."""


@dataclass
class SourcesConfig:
    ids: list[str] = field(default_factory=list)
    """Source ids to ingest; each needs data_contracts/sources/<id>.toml."""
    manifests: str = "data_contracts/sources"
    """Folder of source manifests."""
    data_root: str = ".keel/corpus"
    """Base for relative data URIs in manifests; relative URIs may not escape it."""
    max_doc_bytes: int = 5_000_000
    """Documents larger than this are quarantined at ingest (reason 'oversized')."""


@dataclass
class LegalConfig:
    policy: str = "data_contracts/policy.toml"
    """Licence allow-list, blocklists and opt-outs."""
    intended_use: str = "commercial"
    """Which allow-list category set applies: 'commercial' or 'research'."""
    optout: str = "data_contracts/optout.toml"
    """Opt-outs recorded by `keel forget`, merged into the policy's [optout]."""
    ut1_blocklist: bool = True
    """Also block FineWeb's UT1-derived domain list when datatrove's assets are installed."""


@dataclass
class DaskConfig:
    address: str = ""
    """Scheduler address (tcp://host:port) of an existing cluster; empty starts a LocalCluster."""
    n_workers: int = 2
    """Workers of the LocalCluster (one thread each)."""
    memory_limit: str = "4GiB"
    """Per-worker memory limit of the LocalCluster."""
    partition_rows: int = 20_000
    """Target documents per partition when reading raw data."""


@dataclass
class CurateConfig:
    steps: list[str] = field(default_factory=lambda: ["normalize", "legal_policy", "language", "gopher_quality", "gopher_repetition",
                                                      "fineweb_quality", "hap", "pii"])
    """Partition-local rules in order (tasks/rules.py); exact and near dedup run after them, globally."""
    languages: list[str] = field(default_factory=lambda: ["en"])
    """Keep documents whose detected language is one of these."""
    min_lang_score: float = 0.65
    """Minimum language-id confidence (FineWeb keeps English at >= 0.65)."""
    hap_threshold: float = 0.99
    """Reject documents whose HAP score (sentence-level max) reaches this."""
    c4_min_sentences: int = 5
    """C4: documents with fewer sentences after line filtering are rejected."""
    fineweb_line_punct_thr: float = 0.12
    """FineWeb: reject when the fraction of lines ending in punctuation is at most this."""
    fineweb_short_line_thr: float = 0.67
    """FineWeb: reject when the fraction of lines of <= 30 characters is at least this."""
    fineweb_char_dup_ratio: float = 0.01
    """FineWeb: reject when duplicated-line characters exceed this fraction."""
    fineweb_new_line_ratio: float = 0.3
    """FineWeb: reject when newlines per word exceed this (list-like documents)."""
    policy_path: str = ""
    """Filled from [legal] at run time (the document-level legal rule reads it)."""
    optout_path: str = ""
    """Filled from [legal] at run time."""
    intended_use: str = "commercial"
    """Filled from [legal] at run time."""
    ut1_blocklist: bool = True
    """Filled from [legal] at run time."""
    near_dedup: bool = True
    """MinHash near-duplicate removal across all shards and sources (one survivor per cluster)."""
    minhash_ngram: int = 5
    """Word n-gram size of MinHash shingles."""
    minhash_bands: int = 14
    """LSH bands (FineWeb: 14 bands x 8 rows, ~0.75 Jaccard threshold)."""
    minhash_rows: int = 8
    """Rows (hashes) per LSH band."""
    min_words: int = 50
    """Gopher: documents with fewer words are rejected (lower it for short structured records)."""
    max_words: int = 100_000
    """Documents with more words are rejected (Gopher)."""
    min_avg_word_length: float = 3.0
    """Gopher quality: mean word length lower bound."""
    max_avg_word_length: float = 10.0
    """Gopher quality: mean word length upper bound."""
    max_symbol_word_ratio: float = 0.1
    """Gopher quality: '#' and '...' per word."""
    min_alpha_word_fraction: float = 0.8
    """Gopher quality: fraction of words containing an alphabetic character."""
    max_duplicate_line_fraction: float = 0.3
    """Gopher repetition: fraction of lines that duplicate an earlier line."""
    max_duplicate_paragraph_fraction: float = 0.3
    """Gopher repetition: fraction of paragraphs that duplicate an earlier one."""
    exact_dedup: bool = True
    """Drop documents whose normalised text equals an earlier one (keeps the smallest doc_id)."""


@dataclass
class ContractsConfig:
    expectations: str = "data_contracts/expectations"
    """Folder of Great Expectations suites (raw.json, curated.json, tokenized.json)."""


@dataclass
class TokenizeConfig:
    vocab_size: int = 8192
    """Byte-level BPE vocabulary size (including special tokens)."""
    tokenizer_path: str = ""
    """Load this tokenizer.json instead of training one."""
    sample_bytes: int = 20_000_000
    """At most this much curated text (sampled deterministically) trains the tokenizer."""
    valid_per_mille: int = 20
    """Documents whose hash falls in the first N per mille go to the valid split."""
    test_per_mille: int = 20
    """The next N per mille go to the test split."""


SECTIONS: dict[str, type] = {
    "run": RunConfig,
    "sources": SourcesConfig,
    "legal": LegalConfig,
    "dask": DaskConfig,
    "curate": CurateConfig,
    "contracts": ContractsConfig,
    "tokenize": TokenizeConfig,
    "model": ModelConfig,
    "pretrain": TrainConfig,
    "specialize": TrainConfig,
    "evaluate": EvaluateConfig,
    "plan": PlanConfig,
    "baseline": BaselineConfig,
}


@dataclass
class Recipe:
    run: RunConfig
    sources: SourcesConfig
    legal: LegalConfig
    dask: DaskConfig
    curate: CurateConfig
    contracts: ContractsConfig
    tokenize: TokenizeConfig
    model: ModelConfig
    pretrain: TrainConfig
    specialize: TrainConfig
    evaluate: EvaluateConfig
    plan: PlanConfig
    baseline: BaselineConfig
    path: str = ""

    def section_dict(self, name: str) -> dict[str, Any]:
        return dataclasses.asdict(getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        return {name: self.section_dict(name) for name in SECTIONS}


def _coerce(value: Any, typ: Any, where: str) -> Any:
    origin = get_origin(typ)
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        (inner,) = get_args(typ)
        return [_coerce(v, inner, where) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a table, got {value!r}")
        _, inner = get_args(typ)
        return {str(k): _coerce(v, inner, f"{where}.{k}") for k, v in value.items()}
    if typ is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true/false, got {value!r}")
        return value
    if typ in (int, float):
        if isinstance(value, bool):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        try:
            out = typ(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected {typ.__name__}, got {value!r}") from None
        if typ is int and isinstance(value, float) and value != out:
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return out
    if typ is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _build_section(name: str, raw: dict[str, Any]):
    cls = SECTIONS[name]
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"recipe [{name}]: unknown key(s) {unknown}; known: {sorted(known)}")
    return cls(**{k: _coerce(v, hints[k], f"[{name}].{k}") for k, v in raw.items()})


def _parse_override(text: str) -> tuple[str, str, Any]:
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ValueError(f"override {text!r}: expected section.key=value, e.g. pretrain.steps=10")
    dotted, value = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:  # TOML value syntax first (numbers, booleans, arrays, inline tables), else a bare string
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return section, key, parsed


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load a recipe TOML, apply `section.key=value` overrides and validate every field."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"recipe {path} not found; pass --recipe infra/recipes/demo.toml or another recipe file")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"recipe {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ValueError(f"recipe {path}: unknown section(s) {unknown}; known: {sorted(SECTIONS)}")
    for text in overrides:
        section, key, value = _parse_override(text)
        if section not in SECTIONS:
            raise ValueError(f"override {text!r}: unknown section {section!r}; known: {sorted(SECTIONS)}")
        target = raw.setdefault(section, {})
        *parents, leaf = key.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[leaf] = value
    recipe = Recipe(**{name: _build_section(name, raw.get(name, {})) for name in SECTIONS}, path=str(path))
    validate(recipe)
    return recipe


def validate(recipe: Recipe) -> None:
    if not recipe.sources.ids:
        raise ValueError("recipe [sources].ids is empty: name at least one source from data_contracts/sources/")
    for name in ("pretrain", "specialize"):
        t: TrainConfig = getattr(recipe, name)
        if t.nproc % (t.tensor_parallel * t.pipeline_parallel):
            raise ValueError(f"[{name}] nproc={t.nproc} must be a multiple of tensor_parallel*pipeline_parallel")
        dp = t.nproc // (t.tensor_parallel * t.pipeline_parallel)
        if t.global_batch_size % (t.micro_batch_size * dp):
            raise ValueError(f"[{name}] global_batch_size must be a multiple of micro_batch_size * data-parallel size ({dp})")
        if t.launcher not in ("local", "slurm", "kubernetes"):
            raise ValueError(f"[{name}] launcher must be local, slurm or kubernetes, not {t.launcher!r}")
        if t.attention not in ("sdpa", "unfused"):
            raise ValueError(f"[{name}] attention must be sdpa or unfused, not {t.attention!r}")
        if t.recompute not in ("none", "selective", "full"):
            raise ValueError(f"[{name}] recompute must be none, selective or full, not {t.recompute!r}")
        if t.launcher == "kubernetes" and not t.image:
            raise ValueError(f"[{name}] launcher 'kubernetes' needs an image (the keel container)")
        if not 0 <= t.warmup_steps < t.steps:
            raise ValueError(f"[{name}] warmup_steps ({t.warmup_steps}) must be below steps ({t.steps})")
        if not t.mix or any(w < 0 for w in t.mix.values()) or sum(t.mix.values()) <= 0:
            raise ValueError(f"[{name}].mix needs non-negative weights with a positive sum, e.g. {{general = 1.0}}")
    tk = recipe.tokenize
    if tk.valid_per_mille + tk.test_per_mille >= 1000:
        raise ValueError("[tokenize] valid_per_mille + test_per_mille must be below 1000")


def stable_hash(*parts: Any, length: int = 16) -> str:
    """Hash of JSON-serialisable parts, independent of dict order."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
