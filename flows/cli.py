"""The `keel` command line.

  keel run --recipe infra/recipes/demo.toml [--set section.key=value ...] [--json]
  keel plan --recipe R [--set ...] [--json]     token budget (runs/reuses the data stages)
  keel models [--tracking-uri URI] [--json]     registered models, versions, aliases, key metrics
  keel lineage (--model NAME@ALIAS | --source ID | --doc ID) [--json]
  keel forget (--source ID | --doc ID) --recipe R [--no-run]
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


def _tracking_uri(args) -> str:
    from tasks.tracking import default_tracking_uri

    if getattr(args, "tracking_uri", ""):
        return args.tracking_uri
    if getattr(args, "recipe", ""):
        from model.config import load_recipe

        return load_recipe(args.recipe).run.tracking_uri or default_tracking_uri()
    return default_tracking_uri()


def cmd_lineage(args) -> int:
    from tasks import lineage

    uri = _tracking_uri(args)
    if args.model:
        out = lineage.model_lineage(uri, args.model)
    elif args.source:
        out = {"source": args.source, "models": lineage.versions_with_source(uri, args.source)}
    else:
        out = {"doc": args.doc, "models": lineage.versions_with_doc(uri, args.doc)}
    if args.json:
        print(json.dumps(out))
    elif args.model:
        print(f"{out['model']} v{out['version']} {out['aliases']}{'  TAINTED' if out['tainted'] else ''}")
        for sid in out["sources"]:
            print(f"  {sid:<16} {out['licenses'].get(sid, '?'):<32} {out['tokens_by_source'].get(sid, 0):>12,} tokens")
        print(f"  ledger: {out['ledger_uri']} (sha256 {out['ledger_sha256']})")
    else:
        print(f"{'source' if args.source else 'document'} {args.source or args.doc} was seen by:")
        for m in out["models"] or [{"model": "(no registered model)", "version": "", "aliases": []}]:
            print(f"  {m['model']} v{m['version']} {m['aliases']}")
    return 0


def cmd_forget(args) -> int:
    from model.config import load_recipe
    from tasks import lineage

    recipe = load_recipe(args.recipe)
    uri = recipe.run.tracking_uri or _tracking_uri(args)
    kind, value = ("sources", args.source) if args.source else ("doc_ids", args.doc)
    added = lineage.add_optout(recipe.legal.optout, kind, value)
    seen = lineage.versions_with_source(uri, value) if args.source else lineage.versions_with_doc(uri, value)
    lineage.taint(uri, seen, f"opt-out of {kind[:-1]} {value}")
    print(f"opt-out {'added' if added else 'already present'}: {kind} {value} in {recipe.legal.optout}")
    for m in seen:
        print(f"  tagged tainted: {m['model']} v{m['version']} {m['aliases']}")
    if args.no_run:
        return 0
    args.set, args.json, args.until = [], args.json, ""
    return cmd_run(args)


def cmd_doctor(args) -> int:
    from flows.doctor import checks

    results = checks(args.output_root, args.tracking_uri or os.environ.get("KEEL_TRACKING_URI", ""))
    if args.json:
        print(json.dumps(results))
    for r in results if not args.json else []:
        print(f"{'ok ' if r['ok'] else 'FIX'} {r['check']:<28} {r['detail']}" + (f"  -> {r['fix']}" if r["fix"] else ""))
    return 0 if all(r["ok"] for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="keel", description="raw text -> registered, specialized model")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the pipeline on a recipe")
    p.add_argument("--recipe", required=True)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--json", action="store_true", help="print one JSON summary as the last line")
    p.add_argument("--until", default="", choices=["", "legal", "ingest", "curate", "tokenize", "plan"],
                   help="stop after this stage")
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
    p = sub.add_parser("lineage", help="which data a model saw, or which models saw some data")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--model", help="NAME@ALIAS or NAME:VERSION")
    g.add_argument("--source")
    g.add_argument("--doc")
    p.add_argument("--tracking-uri", default="")
    p.add_argument("--recipe", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_lineage)
    p = sub.add_parser("forget", help="opt a source or document out, taint models that saw it, re-run")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--source")
    g.add_argument("--doc")
    p.add_argument("--recipe", required=True)
    p.add_argument("--no-run", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_forget)
    p = sub.add_parser("doctor", help="check the environment and say what to fix")
    p.add_argument("--output-root", default=".keel/runs")
    p.add_argument("--tracking-uri", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_doctor)
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
