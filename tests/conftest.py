"""Shared fixtures: isolated Prefect/MLflow homes, the real demo corpus, tiny recipes."""
from __future__ import annotations

import os
import shutil
import socket
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


SHARED = {"slurm": "slurm", "long_run_data": "slurm", "stack": "stack"}
"""Fixtures whose tests run in one pytest-xdist worker: one Slurm controller per machine, and the session's prepared
output root or server stack built once."""
GROUPED_FILES = {"tests/flows/test_slurm.py": "slurm", "tests/flows/test_crash_safety.py": "slurm",
                 "tests/flows/test_study.py": "slurm", "tests/flows/test_ops.py": "stack"}
"""The test files holding those tests, each run whole by one worker (`pytest_xdist_make_scheduler` below). By file:
pytest 9's node ids no longer carry pytest-xdist's `xdist_group` names to the scheduler, so those marks group
nothing there."""


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup`, with the files of GROUPED_FILES as groups (the biggest groups go out first)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class FileGroups(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return GROUPED_FILES.get(nodeid.split("::", 1)[0]) or nodeid

    return FileGroups(config, log)


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run only where torch sees a CUDA device; elsewhere they are skipped with the reason. A test that
    uses a shared fixture must sit in a file of that fixture's group."""
    stray = [f"{item.nodeid} uses {f!r}" for item in items for f, g in SHARED.items()
             if f in getattr(item, "fixturenames", ()) and GROUPED_FILES.get(item.nodeid.split("::", 1)[0]) != g]
    if stray:
        raise pytest.UsageError("tests/conftest.py GROUPED_FILES lacks their files: " + "; ".join(stray))
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("keel-home")
    os.environ["PREFECT_HOME"] = str(home / "prefect")
    os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(home / "prefect" / "storage")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ.pop("KEEL_TRACKING_URI", None)
    yield home


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    """The real demo corpus, built once per session from installed packages."""
    from tasks.ingest.demo_corpus import build_demo_corpus

    root = tmp_path_factory.mktemp("corpus")
    build_demo_corpus(root)
    return root


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_api(prefect_harness) -> str:
    """The session's Prefect server, for `keel run` subprocesses: each would otherwise start (and stop) its own
    temporary server, 5-10 s a run. (The tests of what a kill does to the embedded server start their own.)"""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


TINY_RECIPE = """
[run]
name = "keel-test"
output_root = "{root}/runs"
tracking_uri = "sqlite:///{root}/mlflow.db"
registered_model = "keel-test-cyber"
seed = 7

[sources]
ids = {ids}
manifests = "{manifests}"
data_root = "{data_root}"

[legal]
policy = "{policy}"
optout = "{root}/optout.toml"

[dask]
n_workers = 2
partition_rows = 1500

[curate]
steps = ["normalize", "legal_policy", "language", "gopher_quality", "gopher_repetition", "hap", "pii"]

[curate.gopher_quality]
min_words = 20

[contracts]
expectations = "{expectations}"

[tokenize]
vocab_size = 1024
test_per_mille = 60
eval_task_items = 24

[model]
preset = "tiny"
seq_length = 64

[pretrain]
steps = 4
micro_batch_size = 4
global_batch_size = 8
warmup_steps = 1
mix = {{general = 1.0}}

[specialize]
steps = 4
micro_batch_size = 4
global_batch_size = 8
warmup_steps = 1
mix = {{cybersecurity = 0.5, general = 0.5}}

[evaluate]
max_sequences = 8
max_general_regression = 10.0
"""


def write_recipe(root: Path, data_root: Path, ids=("shakespeare", "python_docs", "mitre_cwe", "mitre_attack"),
                 manifests: Path | None = None, policy: Path | None = None) -> Path:
    manifests = manifests or REPO / "data_contracts" / "sources"
    text = TINY_RECIPE.format(root=root, ids=list(ids), data_root=data_root, manifests=manifests,
                              policy=policy or REPO / "data_contracts" / "policy.toml",
                              expectations=REPO / "data_contracts" / "expectations").replace("'", '"')
    domains = set()
    for sid in ids:  # sources without general text: train on the one domain they have
        path = Path(manifests) / f"{sid}.toml"
        if path.is_file():
            domains.add(tomllib.loads(path.read_text()).get("domain"))
    if domains and "general" not in domains:
        only = sorted(domains)[0]
        text = text.replace("mix = {general = 1.0}", f"mix = {{{only} = 1.0}}").replace(
            "mix = {cybersecurity = 0.5, general = 0.5}", f"mix = {{{only} = 1.0}}")
    path = root / "recipe.toml"
    path.write_text(text)
    return path


LONG_RUN_IDS = ("python_docs", "mitre_attack")
LONG_RUN_DATA = ['curate.steps=["normalize", "language", "gopher_repetition", "hap"]', "tokenize.test_per_mille=150"]
"""The sources and data settings of the tests that kill, stop and resubmit a pretrain (crash safety, Slurm)."""


@pytest.fixture(scope="session")
def long_run_data(tmp_path_factory, demo_corpus, prefect_api) -> Path:
    """An output root with the data stages of those tests done, once per session: each test copies it
    (`start_from`) and its own `keel run` finds them cached (same hashes) and starts at pretrain."""
    import subprocess
    import sys

    d = tmp_path_factory.mktemp("long-run-data")
    recipe = write_recipe(d, demo_corpus, ids=LONG_RUN_IDS)
    env = {**os.environ, "KEEL_HOME": str(d / "home"), "PREFECT_HOME": str(d / "home" / "prefect"),
           "KEEL_LOCK_DIR": str(d / "locks"), "PREFECT_API_URL": prefect_api}
    args = [sys.executable, "-m", "flows.cli", "run", "--recipe", str(recipe), "--until", "tokenize"]
    for s in LONG_RUN_DATA:
        args += ["--set", s]
    out = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return d / "runs"


def start_from(data: Path, root: Path) -> None:
    """Copy a prepared output root (its lock record left behind: the next run takes the root afresh)."""
    import shutil

    shutil.copytree(data, root, ignore=shutil.ignore_patterns("_lock"))


@pytest.fixture
def tiny_recipe(tmp_path, demo_corpus) -> Path:
    return write_recipe(tmp_path, demo_corpus)


def approve(ids, data_root, manifests: Path | None = None, policy: Path | None = None, optout: str = ""):
    """The legal stage's result for these sources (what ingest and curation receive)."""
    from tasks.core.stage import Runtime
    from tasks.govern import legal
    from tasks.ingest.config import SourcesConfig

    req = legal.GateRequest(SourcesConfig(ids=tuple(ids), manifests=str(manifests or REPO / "data_contracts" / "sources"),
                                          data_root=str(data_root)),
                            legal.LegalConfig(policy=str(policy or REPO / "data_contracts" / "policy.toml"), optout=optout))
    return legal.run(req, None, None, Runtime())


def run_direct(stage, cfg, inputs, root, cluster=None, name: str = "", key: str = "x"):
    """Run one stage's entry directly (no flow, no cache) into <root>/<name>/<key>; returns (result, StageDir)."""
    from tasks.core.stage import Runtime
    from tasks.core.storage import StageDir

    sd = StageDir(str(root), name or stage.name, key)
    sd.begin()
    return stage.run(cfg, inputs, sd, Runtime(cluster=cluster)), sd


def copy_manifests(dst: Path) -> Path:
    shutil.copytree(REPO / "data_contracts" / "sources", dst)
    return dst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A distinctive secret: tests scan everything keel writes for it.
PLANTED_SECRET = "keelPlantedSecret-9f3a7c1e55d04b2b"


class S3Endpoint:
    """moto's S3 server on 127.0.0.1 (real HTTP). `stop()`/`start()` simulate an outage: the objects survive
    (moto keeps them in this process) and the endpoint comes back on the same port."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture
def s3_endpoint(monkeypatch):
    import urllib.request

    endpoint = S3Endpoint()
    endpoint.start()
    # moto keeps buckets in this process across server instances: start each test from an empty store
    urllib.request.urlopen(urllib.request.Request(f"{endpoint.url}/moto-api/reset", method="POST"), timeout=10)
    for k, v in {"AWS_ACCESS_KEY_ID": "keel-test-key", "AWS_SECRET_ACCESS_KEY": PLANTED_SECRET,
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint.url,
                 "AWS_ENDPOINT_URL": endpoint.url}.items():
        monkeypatch.setenv(k, v)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir("keel-test")
    yield endpoint
    s3fs.S3FileSystem.clear_instance_cache()
    endpoint.stop()


@pytest.fixture
def s3(s3_endpoint):
    import s3fs

    return s3fs.S3FileSystem()


def plant_secrets(monkeypatch) -> str:
    """Secrets as a user would provide them: in the environment. Returns the value to scan for."""
    for k in ("AWS_SECRET_ACCESS_KEY", "KEEL_API_TOKEN", "HF_TOKEN", "DATABASE_PASSWORD"):
        monkeypatch.setenv(k, PLANTED_SECRET)
    return PLANTED_SECRET


def files_containing(secret: str, *roots) -> list[str]:
    """Every file under `roots` whose bytes contain `secret` (gzip members are opened too)."""
    import gzip

    needle, hits = secret.encode(), []
    for root in roots:
        for p in Path(root).rglob("*") if Path(root).is_dir() else []:
            if not p.is_file() or p.is_symlink() or p.stat().st_size > 512 * 2**20:
                continue
            data = p.read_bytes()
            if p.suffix == ".gz":
                try:
                    data = gzip.decompress(data)
                except (OSError, EOFError):
                    pass
            if needle in data:
                hits.append(str(p))
    return hits


def prefect_records_containing(secret: str) -> list[str]:
    """Prefect logs and artifacts on the current API server that contain `secret`."""
    from prefect.client.orchestration import get_client

    hits = []
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            logs = client.read_logs(limit=200, offset=offset)
            hits += [f"log: {lg.message[:80]}" for lg in logs if secret in lg.message]
            if len(logs) < 200:
                break
            offset += 200
        hits += [f"artifact: {a.key}" for a in client.read_artifacts(limit=200)
                 if secret in f"{a.data} {a.description}"]
    return hits


@pytest.fixture
def dask_processes():
    """A real `dask scheduler` and two `dask worker` processes (nannies included) on 127.0.0.1; yields a keel
    Cluster connected to them."""
    import subprocess
    import sys
    import time

    from tasks.core.cluster import Cluster

    port = free_port()
    bindir = os.path.dirname(sys.executable)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    procs = [subprocess.Popen([f"{bindir}/dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], **quiet)]
    procs += [subprocess.Popen([f"{bindir}/dask", "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
                                "--no-dashboard", "--host", "127.0.0.1"], **quiet) for _ in range(2)]
    cluster = Cluster(address=f"tcp://127.0.0.1:{port}")
    try:
        deadline = time.time() + 60
        while len(cluster.client.scheduler_info()["workers"]) < 2 and time.time() < deadline:
            time.sleep(0.5)
        assert len(cluster.client.scheduler_info()["workers"]) == 2
        yield cluster
    finally:
        cluster.close()
        for p in procs:
            p.terminate()
            p.wait(timeout=30)


@pytest.fixture(scope="session")
def slurm():
    """A real single-node Slurm (tests/slurm.py), or a skip saying why there is none."""
    from tests import slurm as cluster

    daemons, why = cluster.start()
    if why:
        pytest.skip(why)
    yield cluster
    cluster.stop(daemons)
