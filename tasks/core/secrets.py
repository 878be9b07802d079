"""Secrets never reach what keel writes: logs, the terminal, MLflow, Prefect, stage files.

Three mechanisms, from strongest to last resort:
1. Credentials never enter keel's values. `user:password@` in a URI (the tracking URI, an s3:// output root or
   source) is taken out of the URI when the recipe loads and handed to the client library through the environment
   it reads (MLFLOW_TRACKING_USERNAME/PASSWORD, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); the URI keel carries, logs
   and stores has none. Recipe values can name environment variables (`${env:NAME}`) instead of holding secrets.
2. Every secret keel learns (a URI's password, a Secret block's values, an `${env:...}` value of a secret-named
   variable, the stack's generated credentials) is registered here, and `redact` replaces it wherever it appears.
3. Shapes: values under secret-looking keys (password, token, private_key, dsn, sas, ...), `user:password@` in URIs
   and signature/token query parameters (presigned S3, SAS, OAuth) are masked even when never registered.

`install_log_redaction()` applies `redact` to every log record of the process (Prefect's API log handler, the
console, print capture) at creation. Pure Python.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
SECRET_KEY = re.compile(
    r"(^|[._-])(secret|secrets|password|passwd|pwd|passphrase|token|api[_-]?key|apikey|access[_-]?key|credentials?|auth"
    r"|private[_-]?key|client[_-]?secret|dsn|sas|sig|signature|session[_-]?token|security[_-]?token|cookie"
    r"|connection[_-]?string|bearer|secret[_-]?key|secret[_-]?access[_-]?key)$", re.I)
"""Key names whose values are secrets (matched against the last component of a dotted or snake name)."""
_SECRET_ENV = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL|SESSION|DSN|SAS"
                         r"|AUTH)", re.I)
_URI_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:?#]*):(?P<pw>[^/@\s?#]+)@")
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&;](?:X-Amz-Signature|X-Amz-Security-Token|X-Amz-Credential|X-Goog-Signature|X-Goog-Credential|sig"
    r"|signature|token|access_token|id_token|refresh_token|api_key|apikey|key|password|secret|client_secret|sas"
    r"|code)=)(?P<value>[^&#\s\"']+)", re.I)
_BEARER = re.compile(r"(?P<name>\b(?:Bearer|Basic)\s+)(?P<value>[A-Za-z0-9+/=._~-]{8,})")
MIN_LEN = 6
"""Shorter registered values are not masked (they would mask ordinary words)."""

_lock = threading.Lock()
_values: set[str] = set()
_taken_env: dict[str, str] = {}


def register(*values: Any) -> None:
    """Remember secret values: `redact` masks them from now on in this process."""
    with _lock:
        for v in values:
            if isinstance(v, str) and len(v) >= MIN_LEN:
                _values.add(v)


def registered() -> frozenset[str]:
    return frozenset(_values)


def secret_env_name(name: str) -> bool:
    return bool(_SECRET_ENV.search(name))


def register_environment() -> None:
    """Register the values of secret-named environment variables (AWS_SECRET_ACCESS_KEY, HF_TOKEN, ...)."""
    register(*(v for k, v in os.environ.items() if secret_env_name(k)))


def redact(text: str) -> str:
    """`text` with registered secrets, URI passwords, secret query parameters and bearer tokens masked."""
    if not isinstance(text, str) or not text:
        return text
    for v in sorted(_values, key=len, reverse=True):
        if v in text:
            text = text.replace(v, MASK)
    text = _URI_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _QUERY_SECRET.sub(lambda m: m["name"] + MASK, text)
    return _BEARER.sub(lambda m: m["name"] + MASK, text)


def redact_value(key: str, value: Any) -> Any:
    """A value as it may be shown: masked whole under a secret-looking key, else its strings redacted."""
    if SECRET_KEY.search(str(key)) and value not in (None, "", [], {}):
        return MASK
    return redact_obj(value)


def redact_obj(obj: Any) -> Any:
    """A JSON-like structure with every secret masked (keys are kept)."""
    if isinstance(obj, dict):
        return {k: redact_value(k, v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_obj(v) for v in obj)
    if isinstance(obj, str):
        return redact(obj)
    return obj


def split_userinfo(uri: str) -> tuple[str, str, str]:
    """(uri without user:password@, user, password); the password is registered."""
    if not isinstance(uri, str) or "@" not in uri or "://" not in uri:
        return uri, "", ""
    parts = urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri, "", ""
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    if parts.netloc.startswith("[") or (":" in host and not host.startswith("[")):
        netloc = f"[{host}]" + (f":{parts.port}" if parts.port else "")
    from urllib.parse import unquote

    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    register(password)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), user, password


_CREDENTIAL_ENV = {"mlflow": ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"),
                   "s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}


def take_uri_credentials(uri: str, kind: str) -> str:
    """Move `user:password@` out of a URI into the environment variables its client reads (`kind`: "mlflow" for a
    tracking URI; s3:// URIs by scheme). Returns the clean URI. A second, different set of credentials for the
    same client is refused (one process has one environment)."""
    clean, user, password = split_userinfo(uri)
    if not user and not password:
        return uri
    scheme = clean.split("://", 1)[0].lower()
    kind = "s3" if scheme in ("s3", "s3a") else kind
    if kind not in _CREDENTIAL_ENV:
        raise ValueError(f"credentials in a {scheme}:// URI ({redact(uri)}) are not supported: give them through the "
                         "environment or a Prefect Secret block ([run].secret_blocks)")
    for name, value in zip(_CREDENTIAL_ENV[kind], (user, password)):
        have = os.environ.get(name)
        if have is not None and have != value:
            raise ValueError(f"{redact(uri)} carries credentials that differ from {name} already set for this run: "
                             "one run uses one set of credentials per service")
        os.environ[name] = value
        _taken_env[name] = value
    register(password)
    return clean


def taken_environment() -> dict[str, str]:
    """The variables this process set from URI credentials: what long-lived Dask workers elsewhere need too."""
    return dict(_taken_env)


_INTERP = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def interpolate(value: str, where: str) -> str:
    """`${env:NAME}` replaced by the variable's value (secret-named variables are registered); a missing variable
    is an error naming it (never its value)."""
    def one(m: re.Match) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise KeyError(f"{where}: environment variable {name} is not set (the recipe refers to it as ${{env:{name}}})")
        v = os.environ[name]
        if secret_env_name(name) or SECRET_KEY.search(where.rsplit(".", 1)[-1]):
            register(v)
        return v

    return _INTERP.sub(one, value)


class _RedactingRecords:
    def __init__(self, inner):
        self.inner = inner

    def __call__(self, *args, **kwargs):
        record = self.inner(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error path
            return record
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, ()
        return record


def install_log_redaction() -> None:
    """Redact every log record of this process at creation (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RedactingRecords):
        logging.setLogRecordFactory(_RedactingRecords(factory))
