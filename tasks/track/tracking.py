"""Experiment tracking and the model registry: the only module of tasks/ and flows/ that imports mlflow
(model/serving.py, the registered pyfunc, is loaded by MLflow itself).

`Tracker` wraps one parent run per pipeline run with nested runs per stage. `NoopTracker` offers the same
interface for pure-code tests. Registry queries for lineage and forget (`registry_versions`, `resolve_version`,
`set_version_tags`) and the verified loader of registered models (`load_verified`) live here too. Parameters,
tags, dicts and texts pass through tasks/core/secrets.py so that secrets (keys, tokens, passwords, credentials in
URIs, signed URLs) never reach the tracking store; a tracking URI's credentials go to the environment MLflow reads.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from tasks.core.secrets import redact, redact_obj, redact_value, take_uri_credentials

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

_BAD_KEY = re.compile(r"[^A-Za-z0-9_\-. :/]")


def scrub(key: str, value: Any) -> Any:
    """Mask values whose key looks secret, registered secrets, URI passwords and signed-URL tokens."""
    return redact_value(key, value)


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
        tracking_uri = take_uri_credentials(tracking_uri, "mlflow")  # to MLFLOW_TRACKING_USERNAME/PASSWORD
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
        run = self._mlflow.start_run(run_name=name, nested=True,
                                     tags={"keel.stage": name, **{k: str(scrub(k, v)) for k, v in (tags or {}).items()}})
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
        return registry_client(self.tracking_uri)

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
        self._mlflow.log_dict(redact_obj(obj), name)

    def log_text(self, text: str, name: str) -> None:
        self._mlflow.log_text(redact(text), name)

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
                         pip_requirements: list[str], input_example=None) -> dict:
        """Log a models-from-code pyfunc under the active run and register a new version; `manifest` is every
        file of the stored model (size, sha256) as the artifact store holds it right after logging. The
        signature comes from the model's type hints, its params schema from `input_example` ((input, params))."""
        info = self._mlflow.pyfunc.log_model(
            name=name, python_model=code_path, artifacts=artifacts, registered_model_name=registered,
            pip_requirements=pip_requirements, input_example=input_example)
        version = info.registered_model_version
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            local = self._mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=tmp,
                                                              tracking_uri=self.tracking_uri)
            manifest = files_manifest(Path(local))
        return {"model_uri": info.model_uri, "version": str(version), "manifest": manifest}

    def tag_version(self, name: str, version: str, tags: dict, description: str | None = None) -> None:
        client = self._client()
        for k, v in tags.items():
            client.set_model_version_tag(name, version, k, str(scrub(k, v))[:5000])
        if description:
            client.update_model_version(name, version, description=redact(description)[:5000])

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._client().set_registered_model_alias(name, alias, version)

    def find_version(self, name: str, tag: str, value: str) -> str | None:
        client = self._client()
        try:
            versions = client.search_model_versions(f"name = '{name}' and tag.`{tag}` = '{value}'")
        except Exception:  # registry has no such model yet
            return None
        return max((v.version for v in versions), key=int, default=None)

    def alias_version(self, name: str, alias: str) -> dict | None:
        """{"version", "tags"} of the version holding `alias`, or None (no such model or alias)."""
        try:
            v = self._client().get_model_version_by_alias(name, alias)
        except Exception:  # the model or the alias does not exist yet
            return None
        return {"version": str(v.version), "tags": dict(v.tags)}

    def aliases(self, name: str, version: str) -> list[str]:
        return list(self._client().get_model_version(name, version).aliases)


MANIFEST_TAG = "keel.artifact_manifest"
"""Model-version tag: every file of the stored model with its size and sha256, recorded in the registry (the
tracking database) when the version is written, so that whoever can write only the artifact store cannot change
what a verified load runs."""


MLFLOW_WRITES_LATER = {"registered_model_meta"}
"""Written by MLflow after logging (the registered name and version, read as data): not in the manifest."""


def files_manifest(root: Path) -> dict[str, dict]:
    from model.integrity import sha256_file

    return {p.relative_to(root).as_posix(): {"size": p.stat().st_size, "sha256": sha256_file(p)}
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in MLFLOW_WRITES_LATER}


def manifest_tag(manifest: dict[str, dict]) -> str:
    text = json.dumps({k: v["sha256"] + ":" + str(v["size"]) for k, v in manifest.items()}, sort_keys=True,
                      separators=(",", ":"))
    if len(text) > 5000:
        raise ValueError(f"the model has too many files ({len(manifest)}) for its manifest to fit in a registry tag")
    return text


def registry_client(tracking_uri: str):
    """An MLflow client whose registry is this tracking store's (not the process's default registry)."""
    import mlflow

    uri = take_uri_credentials(tracking_uri, "mlflow")
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def verified_model(tracking_uri: str, ref: str, dst: str) -> Path:
    """Download a registered version (NAME@ALIAS or NAME:VERSION) and check every file against the manifest in
    its registry tags before anything of it is imported; IntegrityError names the first file that differs."""
    import mlflow

    from model.integrity import IntegrityError

    v = resolve_version(tracking_uri, ref)
    recorded = v["tags"].get(MANIFEST_TAG)
    if not recorded:
        raise IntegrityError(f"{v['name']} version {v['version']} has no {MANIFEST_TAG} tag: it was not registered by "
                             "keel with a manifest, so it cannot be verified")
    want = {k: tuple(val.rsplit(":", 1)) for k, val in json.loads(recorded).items()}
    uri = take_uri_credentials(tracking_uri, "mlflow")
    # the version's own storage location, from this registry (a `models:/` URI would be resolved against the
    # process's default registry, not the one asked)
    source = registry_client(tracking_uri).get_model_version_download_uri(v["name"], v["version"])
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=dst, tracking_uri=uri))
    have = files_manifest(local)
    where = f"{v['name']} version {v['version']}"
    for rel, (sha, size) in sorted(want.items()):
        if rel not in have:
            raise IntegrityError(f"{where}: {rel} is missing from the artifact store")
        if have[rel]["sha256"] != sha or str(have[rel]["size"]) != size:
            raise IntegrityError(f"{where}: {rel} in the artifact store does not match the sha256 recorded in the "
                                 "registry when it was registered; refusing to load it")
    extra = sorted(set(have) - set(want))
    if extra:
        raise IntegrityError(f"{where}: {extra[0]} in the artifact store was not part of the registered model")
    return local


def load_verified(tracking_uri: str, ref: str):
    """The pyfunc of a registered version, loaded from a verified local copy (`verified_model`)."""
    import tempfile

    import mlflow

    tmp = tempfile.mkdtemp(prefix="keel-model-")
    return mlflow.pyfunc.load_model(str(verified_model(tracking_uri, ref, tmp)))


def list_models(tracking_uri: str) -> list[dict]:
    """Registered models with their versions, aliases, creation time and key metrics (keel.eval.* tags)."""
    import datetime as dt

    import mlflow

    client = registry_client(tracking_uri)
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
                             "metrics": metrics, "source": v.source,
                             "tainted": v.tags.get("keel.tainted") == "true",
                             "tainted_reason": v.tags.get("keel.tainted_reason", "")})
        out.append({"name": rm.name, "versions": versions})
    return out


def _version_dict(v, aliases: list[str]) -> dict:
    return {"name": v.name, "version": str(v.version), "aliases": sorted(aliases), "tags": dict(v.tags)}


def registry_versions(tracking_uri: str) -> list[dict]:
    """Every version of every registered model: name, version, aliases (from the registered model), tags."""
    import mlflow

    client = registry_client(tracking_uri)
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
    client = registry_client(tracking_uri)
    if "@" in ref:
        name, alias = ref.split("@", 1)
        v = client.get_model_version_by_alias(name, alias)
    else:
        name, number = ref.split(":", 1)
        v = client.get_model_version(name, number)
    return _version_dict(v, list(client.get_model_version(v.name, v.version).aliases))


def promote(tracking_uri: str, name: str, version: str, reason: str, by: str) -> dict:
    """A manual champion decision: the alias moves to `version`, which records who, why, when and from what."""
    import datetime as dt

    import mlflow

    client = registry_client(tracking_uri)
    target = client.get_model_version(name, version)  # fails clearly when there is no such version
    if (target.tags or {}).get("keel.tainted") == "true":
        raise ValueError(f"{name} version {version} is tainted (it saw data since forgotten: "
                         f"{target.tags.get('keel.tainted_reason', 'keel forget')}); it cannot be champion")
    try:
        previous = str(client.get_model_version_by_alias(name, "champion").version)
    except Exception:  # no champion yet
        previous = ""
    at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    tags = {"keel.promotion.decision": "champion", "keel.promotion.manual": "true", "keel.promotion.by": by,
            "keel.promotion.reason": reason, "keel.promotion.at": at, "keel.promotion.previous_champion": previous,
            # the automatic decision's tags, replaced: they no longer say why this version is champion
            "keel.promotion.against": f"version {previous}" if previous else "manual decision",
            "keel.promotion.reasons": f"manual decision by {by}: {reason}"}
    set_version_tags(tracking_uri, name, version, tags)
    client.set_registered_model_alias(name, "champion", version)
    if previous and previous != str(version):
        set_version_tags(tracking_uri, name, previous, {
            "keel.promotion.decision": "not champion", "keel.promotion.replaced_by": str(version),
            "keel.promotion.replaced_at": at,
            "keel.promotion.reasons": f"replaced by version {version} in a manual decision by {by}: {reason}"})
    return {"name": name, "version": str(version), "previous_champion": previous or None, **tags}


def set_version_tags(tracking_uri: str, name: str, version: str, tags: dict[str, str]) -> None:
    import mlflow

    client = registry_client(tracking_uri)
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, str(scrub(k, v))[:5000])
