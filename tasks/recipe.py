"""The recipe: one TOML table per section, each a frozen dataclass defined next to the stage that owns it, loaded
into a `Recipe` and validated as a whole before any stage runs.

`load_recipe(path, overrides)` parses the TOML, applies `section.key=value` overrides, builds every section
(unknown keys, wrong types and disallowed choices are reported with the key and the fix) and runs `check_recipe`:
each section's own checks plus the checks across sections (mix domains against the selected sources' manifests,
the specialization domain, the architecture against the HF export, batch and step arithmetic, launcher fields).
It reads the source manifests and the policy, writes nothing, imports no torch and takes well under a second.
Only flows/ imports this module: a stage receives its own typed section, never the whole recipe.
"""
from __future__ import annotations

import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tasks.core.cluster import DaskConfig
from tasks.core.config import RecipeError, as_dict, build, suggest
from tasks.core.secrets import interpolate, take_uri_credentials
from tasks.core.storage import ALLOWED_SCHEMES, scheme_of
from tasks.curate.config import CurateConfig
from tasks.evaluate.config import EvaluateConfig
from tasks.govern.contracts import ContractsConfig
from tasks.govern.legal import ID_RE, LegalConfig
from tasks.ingest.config import SourcesConfig
from tasks.study.config import StudyConfig
from tasks.tokenize.config import TokenizeConfig
from tasks.train.config import BaselineConfig, ModelConfig, TrainConfig, baseline_settings
from tasks.train.mix import specialization_domain
from tasks.train.plan import PlanConfig


@dataclass(frozen=True)
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
    secret_blocks: tuple[str, ...] = ()
    """Prefect Secret blocks (JSON objects of ENV_NAME -> value) loaded into the run's environment."""

    def check(self) -> list[str]:
        p = []
        if self.retries < 0 or self.retry_delay_s < 0:
            p.append("[run]: retries and retry_delay_s must be >= 0")
        if not self.registered_model.strip() or "'" in self.registered_model:
            p.append(f"[run].registered_model = {self.registered_model!r}: give a name without quotes")
        scheme = scheme_of(self.output_root)
        if scheme not in ALLOWED_SCHEMES:
            p.append(f"[run].output_root = {self.output_root!r}: scheme {scheme!r} is not one of {sorted(ALLOWED_SCHEMES)}")
        return p


@dataclass(frozen=True)
class Recipe:
    run: RunConfig = field(default_factory=RunConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    legal: LegalConfig = field(default_factory=LegalConfig)
    dask: DaskConfig = field(default_factory=DaskConfig)
    curate: CurateConfig = field(default_factory=CurateConfig)
    contracts: ContractsConfig = field(default_factory=ContractsConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: TrainConfig = field(default_factory=TrainConfig)
    specialize: TrainConfig = field(default_factory=TrainConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    study: StudyConfig = field(default_factory=StudyConfig)

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)

    @property
    def domain(self) -> str:
        """The specialization domain."""
        return specialization_domain(self.specialize.mix)


SECTIONS = tuple(f.name for f in fields(Recipe))
_SECTION_TYPES = typing.get_type_hints(Recipe)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'section.key=value' (or 'section.sub.key=value') -> (path, value); TOML value syntax, else a string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise RecipeError(f"override {text!r}: expected section.key=value, e.g. pretrain.steps=10")
    dotted, value = text.split("=", 1)
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return [p.strip() for p in dotted.strip().split(".")], parsed


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load a recipe TOML, apply overrides, build and validate every section; RecipeError lists every problem."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path} not found; pass --recipe infra/recipes/demo.toml or another recipe file")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"recipe {path} is not valid TOML: {exc}") from None
    problems = [f"recipe {path}: unknown section [{s}]{suggest(s, SECTIONS)}; known: {list(SECTIONS)}"
                for s in raw if s not in SECTIONS]
    for text in overrides:
        keys, value = parse_override(text)
        if keys[0] not in SECTIONS:
            problems.append(f"override {text!r}: unknown section {keys[0]!r}{suggest(keys[0], SECTIONS)}")
            continue
        target = raw.setdefault(keys[0], {})
        for k in keys[1:-1]:
            target = target.setdefault(k, {})
            if not isinstance(target, dict):
                problems.append(f"override {text!r}: {'.'.join(keys[:keys.index(k) + 1])} is a value, not a table")
                break
        else:
            target[keys[-1]] = value
    problems.extend(_resolve_values(raw))
    sections = {}
    for name in SECTIONS:
        try:
            sections[name] = build(_SECTION_TYPES[name], raw.get(name, {}), f"[{name}]")
        except RecipeError as exc:
            problems.extend(exc.problems)
    if problems:
        raise RecipeError(problems)
    recipe = Recipe(**sections)
    problems = check_recipe(recipe)
    if problems:
        raise RecipeError(problems)
    return recipe


def _resolve_values(node, where: str = "") -> list[str]:
    """In place: `${env:NAME}` references replaced by the variable's value, and `user:password@` taken out of
    every URI into the environment its client reads (tasks/core/secrets.py): the recipe keel carries, logs and
    stores holds no credential. Returns the problems (never a secret's value)."""
    problems = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        here = f"{where}.{key}" if where else str(key)
        if isinstance(value, (dict, list)):
            problems.extend(_resolve_values(value, here))
        elif isinstance(value, str):
            try:
                value = interpolate(value, here)
                node[key] = take_uri_credentials(value, "mlflow" if here == "run.tracking_uri" else "")
            except (KeyError, ValueError) as exc:
                problems.append(f"[{here.split('.', 1)[0]}] {exc.args[0]}")
    return problems


def _manifest_domains(sources: SourcesConfig) -> tuple[dict[str, str], list[str]]:
    """Domain of each selected source from its manifest (the legal stage checks the rest of the manifest)."""
    domains, problems = {}, []
    folder = Path(sources.manifests)
    for sid in sources.ids:
        path = folder / f"{sid}.toml"
        if not ID_RE.match(sid) or not path.is_file():
            known = sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []
            problems.append(f"[sources].ids: unknown source {sid!r}{suggest(sid, known)} (no manifest {path}); "
                            f"known: {known}")
            continue
        try:
            domains[sid] = str(tomllib.loads(path.read_text(encoding="utf-8")).get("domain", ""))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            problems.append(f"[sources].ids: manifest {path} is not valid TOML ({exc})")
    return domains, problems


def check_recipe(r: Recipe) -> list[str]:
    """Every problem of the recipe as a whole, each naming the key and the fix (empty: valid)."""
    problems = [p for name in ("run", "sources", "legal", "dask", "curate", "contracts", "tokenize", "evaluate",
                               "baseline", "study") for p in getattr(r, name).check()]
    problems += r.model.check()
    for name in ("pretrain", "specialize"):
        problems += getattr(r, name).check(f"[{name}]")
    try:
        domain = specialization_domain(r.specialize.mix)
    except ValueError as exc:
        problems.append(str(exc))
        domain = None
    if domain == "general":
        problems.append("[specialize].mix: the specialization domain cannot be 'general'")
    domains, manifest_problems = _manifest_domains(r.sources)
    problems += manifest_problems
    if not manifest_problems:
        present = set(domains.values())
        for name in ("pretrain", "specialize"):
            for d, w in getattr(r, name).mix.items():
                if w > 0 and d not in present:
                    problems.append(f"[{name}].mix names domain {d!r}, but no selected source has it; the sources "
                                    f"[sources].ids = {list(r.sources.ids)} have domains {sorted(present)}")
    if r.baseline.enabled and not r.baseline.check():
        b = baseline_settings(r.model, r.pretrain, r.specialize, r.baseline, r.run.seed)
        problems += b.model.check("[baseline]") + b.train.check("[baseline]")
    return problems

