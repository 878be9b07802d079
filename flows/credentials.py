"""Credentials of the local stack: generated once, kept in files only their owner can read (0600 in a 0700 folder).

  <home>/stack/credentials.json   Prefect auth string; MLflow admin and runner accounts; MLflow's Flask secret
  <home>/stack/tls/               a private CA and the certificates of the Dask scheduler, workers and clients

Nothing here is ever printed, logged or tracked: callers pass values on to processes through their environment.
"""
from __future__ import annotations

import datetime
import json
import os
import secrets
from pathlib import Path

RUNNER = "keel-runner"


def write_private(path: Path, data: str | bytes) -> None:
    """Write a file that is 0600 from its first byte (created with that mode, renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def tighten(*paths: Path) -> None:
    """Make existing files 0600 (a store created by another tool or an older keel)."""
    for p in paths:
        if p.is_file():
            os.chmod(p, 0o600)


def stack_credentials(sd: Path) -> dict:
    """The stack's credentials, generated on first use. KEEL_MLFLOW_ADMIN_USER / KEEL_MLFLOW_ADMIN_PASSWORD and
    KEEL_PREFECT_AUTH_STRING, when set at first start, are used instead of generated values."""
    f = sd / "credentials.json"
    if f.is_file():
        tighten(f)
        return json.loads(f.read_text())
    creds = {
        "prefect_auth_string": os.environ.get("KEEL_PREFECT_AUTH_STRING") or f"keel:{secrets.token_urlsafe(24)}",
        "mlflow_admin": {"username": os.environ.get("KEEL_MLFLOW_ADMIN_USER", "admin"),
                         "password": os.environ.get("KEEL_MLFLOW_ADMIN_PASSWORD") or secrets.token_urlsafe(24)},
        "mlflow_runner": {"username": RUNNER, "password": secrets.token_urlsafe(24)},
        "flask_secret_key": secrets.token_urlsafe(32),
    }
    write_private(f, json.dumps(creds, indent=1))
    return creds


def read_credentials(sd: Path) -> dict | None:
    f = sd / "credentials.json"
    return json.loads(f.read_text()) if f.is_file() else None


def _name(cn: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def tls_files(sd: Path, days: int = 825) -> dict[str, str]:
    """A private CA and one certificate per role (scheduler, worker, client), created once. Dask verifies both ends
    against the CA: only holders of a certificate it signed can connect (mutual TLS)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    d = private_dir(sd / "tls")
    files = {"ca": d / "ca.pem", **{f"{r}_{k}": d / f"{r}.{'pem' if k == 'cert' else 'key'}"
                                   for r in ("scheduler", "worker", "client") for k in ("cert", "key")}}
    if all(p.is_file() for p in files.values()):
        return {k: str(v) for k, v in files.items()}
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = _key()
    ca = (x509.CertificateBuilder().subject_name(_name("keel stack CA")).issuer_name(_name("keel stack CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    write_private(files["ca"], ca.public_bytes(serialization.Encoding.PEM))
    for role in ("scheduler", "worker", "client"):
        key = _key()
        cert = (x509.CertificateBuilder().subject_name(_name(f"keel-{role}")).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(ca_key, hashes.SHA256()))
        write_private(files[f"{role}_key"], _pem_key(key))
        write_private(files[f"{role}_cert"], cert.public_bytes(serialization.Encoding.PEM))
    return {k: str(v) for k, v in files.items()}
