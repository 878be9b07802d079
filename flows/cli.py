"""The `keel` command line.

  keel run --recipe infra/recipes/demo.toml [--set section.key=value ...] [--json]
  keel plan --recipe R [--set ...] [--json]     token budget (runs/reuses the data stages)
  keel models [--tracking-uri URI] [--json]     registered models, versions, aliases, key metrics
  keel corpus [--data-root .keel/corpus] [--force]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def configure_env(home: str = ".keel") -> None:
    """Embedded defaults: Prefect home and MLflow store under .keel/, telemetry off. Must run before imports."""
    home_path = Path(home).resolve()
    home_path.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(home_path / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("PREFECT_LOGGING_LOG_PRINTS", "true")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def cmd_corpus(args) -> int:
    from tasks.corpus import build_demo_corpus

    counts = build_demo_corpus(args.data_root, force=args.force)
    for sid, n in counts.items():
        print(f"{sid}: {n} records -> {Path(args.data_root) / sid}")
    return 0


def cmd_run(args) -> int:
    from model.config import load_recipe
    from tasks.corpus import build_demo_corpus

    recipe = load_recipe(args.recipe, args.set)  # fail fast on a bad recipe, before Prefect starts
    build_demo_corpus(recipe.sources.data_root, recipe.sources.ids)
    from flows.pipeline import keel_pipeline

    result = keel_pipeline(args.recipe, list(args.set), until=args.until)
    if args.until:
        print(json.dumps(result, default=str) if args.json else f"stopped after {args.until}: {result['stage_status']}")
        return 0
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print("\nkeel run finished")
        for stage, status in result["stage_status"].items():
            print(f"  {stage:<18} {status:<10} {result['stage_hashes'].get(stage, '')}")
        print(f"  MLflow tracking URI: {result['tracking_uri']}")
        print(f"  Registered model:    {result['registered_model']} version {result['version']} "
              f"aliases {result['aliases']}")
        for alias in result["aliases"]:
            print(f"  Load it with:        mlflow.pyfunc.load_model('models:/{result['registered_model']}@{alias}')")
        print(f"  Outputs under:       {result['output_root']}")
        print(f"  MLflow UI:           mlflow ui --backend-store-uri {result['tracking_uri']}")
    return 0


def cmd_plan(args) -> int:
    from model.config import load_recipe
    from tasks.corpus import build_demo_corpus

    recipe = load_recipe(args.recipe, args.set)
    build_demo_corpus(recipe.sources.data_root, recipe.sources.ids)
    from flows.pipeline import keel_pipeline
    from tasks.plan import plan_markdown

    result = keel_pipeline(args.recipe, list(args.set), until="plan")
    print(json.dumps(result["plan"]) if args.json else plan_markdown(result["plan"]))
    return 0


def cmd_models(args) -> int:
    from tasks.tracking import default_tracking_uri, list_models

    models = list_models(args.tracking_uri or default_tracking_uri())
    if args.json:
        print(json.dumps(models))
        return 0
    if not models:
        print("no registered models")
    for m in models:
        print(f"{m['name']}")
        for v in m["versions"]:
            metrics = " ".join(f"{k}={v['metrics'][k]}" for k in sorted(v["metrics"]))
            print(f"  v{v['version']:<4} {','.join(v['aliases']) or '-':<20} {v['created']}  {metrics}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="keel", description="raw text -> registered, specialized model")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the pipeline on a recipe")
    p.add_argument("--recipe", required=True)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--json", action="store_true", help="print one JSON summary as the last line")
    p.add_argument("--until", default="", choices=["", "plan"], help="stop after this stage")
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("plan", help="token-budget plan for a recipe")
    p.add_argument("--recipe", required=True)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_plan)
    p = sub.add_parser("models", help="list registered models")
    p.add_argument("--tracking-uri", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_models)
    p = sub.add_parser("corpus", help="write the demo corpus from installed packages")
    p.add_argument("--data-root", default=".keel/corpus")
    p.add_argument("--force", action="store_true")
    p.set_defaults(fn=cmd_corpus)
    args = parser.parse_args(argv)
    configure_env()
    try:
        return args.fn(args)
    except ValueError as exc:  # user errors: the message says what to fix
        print(f"keel: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
