"""Experiment tracking and the model registry: the only module of tasks/ and flows/ that imports mlflow
(model/serving.py, the registered pyfunc, is loaded by MLflow itself).

`Tracker` wraps one parent run per pipeline run with nested runs per stage. `NoopTracker` offers the same
interface for pure-code tests. Registry queries for lineage and forget (`registry_versions`, `resolve_version`,
`set_version_tags`) live here too. Parameters and tags pass through `scrub` so that secrets (keys, tokens,
passwords, credentials in URIs) never reach the tracking store.
"""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any, Iterator

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

_SECRET_KEY = re.compile(r"(^|[._-])(secret|password|passwd|token|api[_-]?key|access[_-]?key|credentials?|auth)$", re.I)
_BAD_KEY = re.compile(r"[^A-Za-z0-9_\-. :/]")
_URI_CREDS = re.compile(r"(://)([^/@\s:]+):([^/@\s]+)@")


def scrub(key: str, value: Any) -> Any:
    """Mask values whose key looks secret, and user:password@ parts of URIs."""
    if _SECRET_KEY.search(key):
        return "***"
    if isinstance(value, str):
        return _URI_CREDS.sub(r"\1\2:***@", value)
    return value


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = _BAD_KEY.sub("_", f"{prefix}{k}")
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = scrub(key, v)
    return out


def default_tracking_uri(home: str = "") -> str:
    home = home or os.environ.get("KEEL_HOME", ".keel")
    return os.environ.get("KEEL_TRACKING_URI") or f"sqlite:///{Path(home).resolve()}/mlflow.db"


def artifact_location(tracking_uri: str) -> str | None:
    """Artifacts next to a sqlite store (never ./mlruns in the working directory); servers decide their own."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


class NoopTracker:
    """Same interface, records nothing."""

    run_id = None
    experiment_id = None
    tracking_uri = ""

    @contextlib.contextmanager
    def stage(self, name: str, tags: dict | None = None) -> Iterator["NoopTracker"]:
        yield self

    def log_params(self, params: dict) -> None: ...
    def log_metrics(self, metrics: dict, step: int | None = None) -> None: ...
    def set_tags(self, tags: dict) -> None: ...
    def log_dict(self, obj: dict, name: str) -> None: ...
    def log_text(self, text: str, name: str) -> None: ...
    def log_artifact(self, path: str, folder: str | None = None) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...


class Tracker(NoopTracker):
    """MLflow tracking with one parent run and nested per-stage runs."""

    def __init__(self, tracking_uri: str, experiment: str, run_name: str, tags: dict | None = None):
        import mlflow

        self._mlflow = mlflow
        self.tracking_uri = tracking_uri
        mlflow.set_tracking_uri(tracking_uri)
        if mlflow.get_experiment_by_name(experiment) is None:
            mlflow.create_experiment(experiment, artifact_location=artifact_location(tracking_uri))
        mlflow.set_experiment(experiment)
        self._parent = mlflow.start_run(run_name=run_name, tags={k: str(scrub(k, v)) for k, v in (tags or {}).items()})
        self.run_id = self._parent.info.run_id
        self.experiment_id = self._parent.info.experiment_id
        self._active = self._parent

    @contextlib.contextmanager
    def stage(self, name: str, tags: dict | None = None) -> Iterator["Tracker"]:
        run = self._mlflow.start_run(run_name=name, nested=True, tags={"keel.stage": name, **(tags or {})})
        prev, self._active = self._active, run
        try:
            yield self
        except BaseException:
            self._mlflow.end_run("FAILED")
            self._active = prev
            raise
        self._mlflow.end_run("FINISHED")
        self._active = prev

    def _client(self):
        return self._mlflow.MlflowClient(self.tracking_uri)

    def log_params(self, params: dict) -> None:
        flat = flatten(params)
        for i in range(0, len(flat), 90):
            chunk = dict(list(flat.items())[i:i + 90])
            self._mlflow.log_params({k: str(v)[:6000] for k, v in chunk.items()})

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v == v}
        if clean:
            self._mlflow.log_metrics(clean, step=step)

    def set_tags(self, tags: dict) -> None:
        self._mlflow.set_tags({k: str(scrub(k, v))[:5000] for k, v in tags.items()})

    def log_dict(self, obj: dict, name: str) -> None:
        self._mlflow.log_dict(obj, name)

    def log_text(self, text: str, name: str) -> None:
        self._mlflow.log_text(text, name)

    def log_artifact(self, path: str, folder: str | None = None) -> None:
        if Path(path).is_dir():
            self._mlflow.log_artifacts(path, folder)
        else:
            self._mlflow.log_artifact(path, folder)

    def end(self, status: str = "FINISHED") -> None:
        while self._mlflow.active_run() is not None:
            self._mlflow.end_run(status)

    # ---- registry -------------------------------------------------------------------------------------
    def log_pyfunc_model(self, code_path: str, artifacts: dict[str, str], name: str, registered: str,
                         pip_requirements: list[str]) -> dict:
        """Log a models-from-code pyfunc under the active run and register a new version."""
        info = self._mlflow.pyfunc.log_model(
            name=name, python_model=code_path, artifacts=artifacts, registered_model_name=registered,
            pip_requirements=pip_requirements)
        version = info.registered_model_version
        return {"model_uri": info.model_uri, "version": str(version)}

    def tag_version(self, name: str, version: str, tags: dict, description: str | None = None) -> None:
        client = self._client()
        for k, v in tags.items():
            client.set_model_version_tag(name, version, k, str(scrub(k, v))[:5000])
        if description:
            client.update_model_version(name, version, description=description[:5000])

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._client().set_registered_model_alias(name, alias, version)

    def find_version(self, name: str, tag: str, value: str) -> str | None:
        client = self._client()
        try:
            versions = client.search_model_versions(f"name = '{name}' and tag.`{tag}` = '{value}'")
        except Exception:  # registry has no such model yet
            return None
        return max((v.version for v in versions), key=int, default=None)

    def aliases(self, name: str, version: str) -> list[str]:
        return list(self._client().get_model_version(name, version).aliases)


def list_models(tracking_uri: str) -> list[dict]:
    """Registered models with their versions, aliases, creation time and key metrics (keel.eval.* tags)."""
    import datetime as dt

    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    out = []
    for rm in client.search_registered_models():
        aliases: dict[str, list[str]] = {}
        for alias, version in (rm.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        versions = []
        for v in sorted(client.search_model_versions(f"name = '{rm.name}'"), key=lambda v: -int(v.version)):
            metrics = {k.removeprefix("keel.eval."): val for k, val in v.tags.items() if k.startswith("keel.eval.")}
            versions.append({"version": str(v.version), "aliases": sorted(aliases.get(str(v.version), [])),
                             "created": dt.datetime.fromtimestamp(v.creation_timestamp / 1000).isoformat(timespec="seconds"),
                             "promoted": v.tags.get("keel.gate.promote"), "sources": v.tags.get("keel.sources"),
                             "metrics": metrics, "source": v.source})
        out.append({"name": rm.name, "versions": versions})
    return out


def _version_dict(v, aliases: list[str]) -> dict:
    return {"name": v.name, "version": str(v.version), "aliases": sorted(aliases), "tags": dict(v.tags)}


def registry_versions(tracking_uri: str) -> list[dict]:
    """Every version of every registered model: name, version, aliases (from the registered model), tags."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    out = []
    for rm in client.search_registered_models():
        by_version: dict[str, list[str]] = {}
        for alias, v in (rm.aliases or {}).items():
            by_version.setdefault(str(v), []).append(alias)
        for v in client.search_model_versions(f"name = '{rm.name}'"):
            out.append(_version_dict(v, by_version.get(str(v.version), [])))
    return out


def resolve_version(tracking_uri: str, ref: str) -> dict:
    """NAME@ALIAS or NAME:VERSION -> the version's name, version, aliases and tags."""
    import mlflow

    if "@" not in ref and ":" not in ref:
        raise ValueError(f"model reference {ref!r}: use NAME@ALIAS or NAME:VERSION")
    client = mlflow.MlflowClient(tracking_uri)
    if "@" in ref:
        name, alias = ref.split("@", 1)
        v = client.get_model_version_by_alias(name, alias)
    else:
        name, number = ref.split(":", 1)
        v = client.get_model_version(name, number)
    return _version_dict(v, list(client.get_model_version(v.name, v.version).aliases))


def set_version_tags(tracking_uri: str, name: str, version: str, tags: dict[str, str]) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, str(scrub(k, v))[:5000])
