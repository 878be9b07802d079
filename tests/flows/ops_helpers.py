"""Helpers of the operations tests (tests/flows/test_ops.py): the keel CLI in a subprocess, plain HTTP, a headless
browser, a page served from another origin."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def keel(args: list[str], env: dict, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, f"keel {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def last_json(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def prefect_client(url: str, auth: str):
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(url + "/api", auth_string=auth)


def http(method: str, url: str, headers: dict | None = None, body: dict | None = None) -> tuple[int, dict, bytes]:
    """One plain HTTP request (no client library smoothing anything over): status, headers, body."""
    import http.client
    import urllib.parse

    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, u.path + (f"?{u.query}" if u.query else ""), body=data,
                 headers={**({"Content-Type": "application/json"} if data else {}), **(headers or {})})
    r = conn.getresponse()
    out = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    conn.close()
    return out


def basic(username: str, password: str) -> dict:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def start_browser():
    if not CHROMIUM:
        pytest.skip("no chromium on this machine (Debian package `chromium`); `make test` installs it when it can")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"])
    return pw, browser


def wait_for_text(page, needles: list[str], timeout_s: float = 60) -> str:
    deadline = time.time() + timeout_s
    text = ""
    while time.time() < deadline:
        text = page.inner_text("body")
        if all(n in text for n in needles):
            return text
        time.sleep(0.5)
    raise AssertionError(f"page never showed {needles}; it showed:\n{text[:2000]}")


EVIL_PAGE = """<html><body>probing<script>
const out = {};
async function probe(name, url, opts) {
  try { const r = await fetch(url, opts); out[name] = {status: r.status, body: (await r.text()).slice(0, 200)}; }
  catch (e) { out[name] = {error: String(e)}; }
}
(async () => {
  await probe('prefect_secrets', 'PREFECT/api/block_documents/filter', {method: 'POST', credentials: 'include',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify({include_secrets: true})});
  await probe('prefect_create', 'PREFECT/api/flow_runs/', {method: 'POST', credentials: 'include',
    headers: {'Content-Type': 'text/plain'}, body: JSON.stringify({flow_id: 'FLOW_ID', name: 'evil-page'})});
  await probe('mlflow_read', 'MLFLOW/api/2.0/mlflow/experiments/search?max_results=5', {credentials: 'include'});
  await probe('mlflow_create', 'MLFLOW/api/2.0/mlflow/experiments/create', {method: 'POST', credentials: 'include',
    headers: {'Content-Type': 'text/plain'}, body: JSON.stringify({name: 'evil-page'})});
  document.body.innerText = JSON.stringify(out); document.title = 'done';
})();
</script></body></html>"""


def fr_flow_id(stack, res) -> str:
    with prefect_client(stack["prefect"], stack["creds"]["prefect_auth_string"]) as client:
        return str(client.read_flow_run(res["flow_run_id"]).flow_id)


def serve_page(html: str) -> str:
    """Serve one page from another origin (a different port on this machine) in a background thread."""
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(html.encode())

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://localhost:{server.server_address[1]}/"
