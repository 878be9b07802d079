"""The MLflow server's accounts for `keel up` (flows/stack.py): its basic-auth configuration, the non-admin
account runs use, and the password hashes it checks on every request."""
from __future__ import annotations

import base64
import contextlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from flows.credentials import tighten


def basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def write_auth_config(home: Path, sd: Path, creds: dict) -> None:
    """MLflow's basic-auth config: admin account, permissions database (0600 before MLflow first opens it)."""
    db = home / "mlflow-auth.db"
    if not db.exists():
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT, 0o600))  # SQLite takes an empty file as a new database
    tighten(db)
    admin = creds["mlflow_admin"]
    from flows.credentials import write_private

    write_private(sd / "mlflow-auth.ini",
                  "[mlflow]\ndefault_permission = READ\n"
                  f"database_uri = sqlite:///{db}\n"
                  f"admin_username = {admin['username']}\nadmin_password = {admin['password']}\n"
                  "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")


def _mlflow_api(url: str, path: str, auth: str, body: dict | None = None, method: str = "") -> tuple[int, dict]:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode() if body is not None else None,
                                 method=method or ("POST" if body is not None else "GET"),
                                 headers={"Authorization": auth, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}") if e.headers.get_content_type() == "application/json" else {}


def provision_runner(url: str, creds: dict) -> None:
    """The non-admin account runs use: created (or its password reset) by the admin, and given MANAGE on the
    experiments and registered models that exist already (a store that predates auth, or a renamed account)."""
    admin = basic_auth(**creds["mlflow_admin"])
    runner = creds["mlflow_runner"]
    code, body = _mlflow_api(url, "/api/2.0/mlflow/users/create", admin, runner)
    if code != 200:
        code, body = _mlflow_api(url, "/api/2.0/mlflow/users/update-password", admin, runner, method="PATCH")
        if code != 200:
            from flows.stack import StackError

            raise StackError(f"MLflow: could not create or update the {runner['username']} account ({code} {body})")
    token = ""
    while True:
        code, page = _mlflow_api(url, "/api/2.0/mlflow/experiments/search", admin,
                                 {"max_results": 1000, **({"page_token": token} if token else {})})
        for e in page.get("experiments", []):
            _mlflow_api(url, "/api/2.0/mlflow/experiments/permissions/create", admin,
                        {"experiment_id": e["experiment_id"], "username": runner["username"], "permission": "MANAGE"})
        token = page.get("next_page_token", "")
        if not token:
            break
    code, page = _mlflow_api(url, "/api/2.0/mlflow/registered-models/search?max_results=1000", admin)
    for m in page.get("registered_models", []):
        _mlflow_api(url, "/api/2.0/mlflow/registered-models/permissions/create", admin,
                    {"name": m["name"], "username": runner["username"], "permission": "MANAGE"})


def cheap_password_checks(db: Path, creds: dict) -> None:
    """MLflow checks the password of every request against its stored hash, made with werkzeug's default (scrypt,
    about 0.1 s of CPU): a run makes hundreds of requests, and they doubled the time of a run against the stack.
    keel's passwords are 32 random bytes, out of reach of guessing at any hashing cost, so their hashes are
    re-made as salted PBKDF2-SHA256 with 1,000 rounds (about 1 ms); the plain password is still never stored."""
    import sqlite3

    from werkzeug.security import generate_password_hash

    with contextlib.closing(sqlite3.connect(db)) as con, con:
        for account in (creds["mlflow_admin"], creds["mlflow_runner"]):
            con.execute("UPDATE users SET password_hash = ? WHERE username = ?",
                        (generate_password_hash(account["password"], method="pbkdf2:sha256:1000"), account["username"]))
    tighten(db)
