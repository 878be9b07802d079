"""The `keel` command line.

  keel run --recipe infra/recipes/demo.toml [--set section.key=value ...] [--json]
  keel plan --recipe R [--set ...] [--json]     token budget (runs/reuses the data stages)
  keel inspect --recipe R --input IN.jsonl --output OUT.jsonl   curation rules on a sample, every signal
  keel models [--tracking-uri URI] [--json]     registered models, versions, aliases, key metrics
  keel promote NAME VERSION --reason "..."      a manual champion decision (who, why, when recorded)
  keel lineage (--model NAME@ALIAS | --source ID | --doc ID) [--json]
  keel forget (--source ID | --doc ID) --recipe R [--purge] [--no-run]
  keel corpus [--data-root .keel/corpus] [--force]
  keel up [--dask] [--s3] [--host H] [--no-auth] | keel status | keel down    local Prefect + MLflow (+ Dask, S3)
  keel deploy --recipe R --cron "0 3 * * *" | keel worker     scheduled runs
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from flows.cli_models import cmd_forget, cmd_lineage, cmd_models, cmd_promote


def keel_home() -> str:
    return os.environ.get("KEEL_HOME", ".keel")


def configure_env(home: str = "") -> None:
    """Embedded defaults: Prefect home and MLflow store under .keel/ (or $KEEL_HOME), telemetry off.
    Must run before Prefect or MLflow are imported."""
    home_path = Path(home or keel_home()).resolve()
    home_path.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(home_path / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("PREFECT_LOGGING_LOG_PRINTS", "true")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _private_overrides(sets: list[str], deploy: bool = False) -> list[str]:
    """`--set` values holding a credential (user:password@ in a URI, a signed-URL token, a secret-named key) are
    handed to the run through the environment (`${env:KEEL_SET_<n>}`), so that the flow run's parameters, which
    Prefect stores and shows, never hold them. A deployment cannot keep them: it is refused there."""
    from tasks.core import secrets
    from tasks.recipe import parse_override

    out = []
    for i, text in enumerate(sets):
        keys, value = parse_override(text)
        if isinstance(value, str) and (secrets.redact(value) != value or secrets.SECRET_KEY.search(keys[-1])):
            if deploy:
                raise ValueError(f"--set {'.'.join(keys)}=... holds a credential, which a deployment would store in "
                                 "Prefect: put it in a Prefect Secret block ([run].secret_blocks) or refer to an "
                                 "environment variable of the worker (${env:NAME})")
            secrets.register(*(v for v in (secrets.split_userinfo(value)[2], value) if v))
            os.environ[f"KEEL_SET_{i}"] = value
            text = f'{".".join(keys)}="${{env:KEEL_SET_{i}}}"'
        out.append(text)
    return out


def cmd_corpus(args) -> int:
    from tasks.ingest.demo_corpus import build_demo_corpus

    counts = build_demo_corpus(args.data_root, force=args.force)
    for sid, n in counts.items():
        print(f"{sid}: {n} records -> {Path(args.data_root) / sid}")
    return 0


def _use_stack() -> None:
    """`keel run` and friends use the servers of a running `keel up` stack (explicit settings win). Without a
    Prefect server, the temporary one this process starts gets a random auth string (it listens on a loopback
    port that other users of the machine could otherwise reach). Runs before Prefect is imported."""
    from flows.stack import lock_ephemeral_prefect, use_stack

    for svc, url in use_stack(keel_home()).items():
        print(f"keel: using the running stack's {svc} at {url}", file=sys.stderr)
    lock_ephemeral_prefect()


def cmd_run(args) -> int:
    from tasks.recipe import load_recipe
    from tasks.ingest.demo_corpus import build_demo_corpus

    _use_stack()

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
            print(f"  Load it with:        tasks.track.tracking.load_verified({result['tracking_uri']!r}, "
                  f"'{result['registered_model']}@{alias}')")
        print(f"  Outputs under:       {result['output_root']}")
        print(f"  MLflow UI:           mlflow ui --backend-store-uri {result['tracking_uri']}")
    return 0


def cmd_study(args) -> int:
    from tasks.recipe import load_recipe
    from tasks.ingest.demo_corpus import build_demo_corpus

    _use_stack()
    recipe = load_recipe(args.recipe, args.set)
    build_demo_corpus(recipe.sources.data_root, recipe.sources.ids)
    from flows.study import keel_study

    result = keel_study(args.recipe, list(args.set))
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print(Path(result["report"]).read_text())
        print(f"chart: {result['chart']}\nMLflow run {result['mlflow_run_id']} at {result['tracking_uri']} "
              f"({result['elapsed_s']:.0f} s)")
    return 0


def cmd_plan(args) -> int:
    from tasks.recipe import load_recipe
    from tasks.ingest.demo_corpus import build_demo_corpus

    _use_stack()

    recipe = load_recipe(args.recipe, args.set)
    build_demo_corpus(recipe.sources.data_root, recipe.sources.ids)
    from flows.pipeline import keel_pipeline
    from tasks.train.plan import plan_markdown

    result = keel_pipeline(args.recipe, list(args.set), until="plan")
    if args.json:
        print(json.dumps(result["plan"]))
    else:
        from tasks.core.typed import load
        from tasks.train.plan import PlanResult

        print(plan_markdown(load(PlanResult, result["plan"])))
    return 0


def cmd_inspect(args) -> int:
    from tasks.curate.inspect import inspect_file
    from tasks.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.set)
    if not Path(args.input).is_file():
        raise ValueError(f"--input {args.input} is not a file (JSONL: one {{\"id\": ..., \"text\": ...}} per line)")
    counts = inspect_file(recipe.curate, args.input, args.output)
    if args.json:
        print(json.dumps(counts))
    else:
        print(f"{counts['documents']} documents: {counts['kept']} kept, rejected {counts['rejected'] or 'none'}")
        print(f"  rules: {', '.join(counts['steps'])} (not applied: {', '.join(counts['not_applied'])})")
        print(f"  every document with its signals: {args.output}")
    return 0


def _ports(args) -> dict:
    return {"prefect": args.prefect_port, "mlflow": args.mlflow_port, "dask": args.dask_port,
            "dask_dashboard": args.dask_dashboard_port, "s3": args.s3_port}


def cmd_up(args) -> int:
    from flows import stack

    try:
        st = stack.up(keel_home(), args.host, _ports(args), args.dask, args.dask_workers, args.s3, not args.no_auth,
                      args.artifacts, log=(lambda *_: None) if args.json else print)
    except stack.StackError as exc:
        print(f"keel: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        _print_status(st, True)
    elif "prefect" in st["services"]:
        print(f"  Prefect UI: {st['services']['prefect']['url']}   MLflow UI: {st['services']['mlflow']['url']}"
              "   (`keel run` uses them while they are up; `keel down` stops them)")
    if st["auth"] and not args.json:
        print(f"  Authentication is on: credentials in {stack.stack_dir(keel_home()) / 'credentials.json'} (mode "
              "0600; keel commands and workers use them). Prefect UI login: its prefect_auth_string; MLflow UI: "
              "its mlflow_admin user and password.")
    elif not args.json:
        print("  WARNING: --no-auth: any local user of this machine can drive these servers")
    return 0


def _print_status(st: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(st))
        return
    if not st["services"]:
        print("keel stack: down (start it with `keel up`)")
    for name, s in st["services"].items():
        state = "up" if s["healthy"] else ("starting/unhealthy" if s["running"] else "DOWN")
        print(f"  {name:<15} {state:<18} {s['url'] or '(workers)':<28} pid {s['pid']}  log {s['log']}")


def cmd_status(args) -> int:
    from flows import stack

    st = stack.status(keel_home())
    _print_status(st, args.json)
    return 0 if st["services"] and all(s["healthy"] for s in st["services"].values()) else 1


def cmd_down(args) -> int:
    from flows import stack

    stopped = stack.down(keel_home())
    if not stopped:
        print("keel stack: nothing running")
    return 0


def cmd_deploy(args) -> int:
    from flows import schedule

    _use_stack()
    out = schedule.deploy(args.recipe, args.cron, args.name, args.set, args.until, args.pool, args.timezone)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"deployment {out['name']} ({out['id']}) on work pool '{out['pool']}': cron '{out['cron']}'")
        print(f"  run it with: keel worker --pool {out['pool']}")
    return 0


def cmd_worker(args) -> int:
    from flows import schedule

    _use_stack()
    return schedule.worker(args.pool, args.limit, args.run_once)


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
    p.add_argument("--until", default="", choices=["", "legal", "ingest", "curate", "tokenize", "plan", "pretrain",
                                                   "specialize"], help="stop after this stage")
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("study", help="the specialization study: domain shares x seeds against natural-mix models")
    p.add_argument("--recipe", required=True)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--json", action="store_true", help="print one JSON summary as the last line")
    p.set_defaults(fn=cmd_study)
    p = sub.add_parser("plan", help="token-budget plan for a recipe")
    p.add_argument("--recipe", required=True)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_plan)
    p = sub.add_parser("inspect", help="a recipe's curation rules on a JSONL sample: every document, every signal")
    p.add_argument("--recipe", required=True)
    p.add_argument("--input", required=True, help='JSONL, one {"id": ..., "text": ...} per line')
    p.add_argument("--output", required=True, help="JSONL: each document with kept, reject_step, reject_reason, signals")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_inspect)
    p = sub.add_parser("promote", help="make a version the champion by hand, with the reason recorded")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("--reason", required=True)
    p.add_argument("--tracking-uri", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_promote)
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
    p.add_argument("--purge", action="store_true",
                   help="also remove the text from the output root's stage folders, rejects and task items")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_forget)
    p = sub.add_parser("up", help="start the local stack: Prefect server, MLflow server [, Dask, S3]")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only; another "
                   "address needs authentication, which is on unless --no-auth)")
    p.add_argument("--prefect-port", type=int, default=4200)
    p.add_argument("--mlflow-port", type=int, default=5000)
    p.add_argument("--dask", action="store_true", help="also a Dask scheduler (with dashboard) and workers")
    p.add_argument("--dask-workers", type=int, default=2)
    p.add_argument("--dask-port", type=int, default=8786)
    p.add_argument("--dask-dashboard-port", type=int, default=8787)
    p.add_argument("--s3", action="store_true", help="also an in-memory S3 endpoint (moto) for local use")
    p.add_argument("--s3-port", type=int, default=9000)
    p.add_argument("--no-auth", action="store_true", help="no authentication (loopback only): Prefect without an "
                   "auth string, MLflow without accounts, Dask without TLS")
    p.add_argument("--artifacts", default="", help="MLflow artifact root (default: local disk; s3://... works)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_up)
    p = sub.add_parser("status", help="state and health of the local stack")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_status)
    p = sub.add_parser("down", help="stop the local stack")
    p.set_defaults(fn=cmd_down)
    p = sub.add_parser("deploy", help="schedule a recipe: a Prefect deployment with a cron schedule")
    p.add_argument("--recipe", required=True)
    p.add_argument("--cron", required=True, help='e.g. "0 3 * * *" (03:00 every day)')
    p.add_argument("--name", default="", help="deployment name (default: the recipe's run.name)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--until", default="", choices=["", "legal", "ingest", "curate", "tokenize", "plan", "pretrain", "specialize"])
    p.add_argument("--pool", default="keel", help="Prefect work pool (process type; created if missing)")
    p.add_argument("--timezone", default="UTC")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_deploy)
    p = sub.add_parser("worker", help="execute scheduled runs (a Prefect process worker on the work pool)")
    p.add_argument("--pool", default="keel")
    p.add_argument("--limit", type=int, default=1, help="flow runs at once on this worker")
    p.add_argument("--run-once", action="store_true", help="poll once, run what is due, exit")
    p.set_defaults(fn=cmd_worker)
    p = sub.add_parser("doctor", help="check the environment and say what to fix")
    p.add_argument("--output-root", default=os.path.join(keel_home(), "runs"))
    p.add_argument("--tracking-uri", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_doctor)
    p = sub.add_parser("corpus", help="write the demo corpus from installed packages")
    p.add_argument("--data-root", default=".keel/corpus")
    p.add_argument("--force", action="store_true")
    p.set_defaults(fn=cmd_corpus)
    args = parser.parse_args(argv)
    configure_env()
    from tasks.core import secrets
    from tasks.core.jobs import RunStopped

    secrets.install_log_redaction()
    secrets.register_environment()
    if getattr(args, "set", None):
        args.set = _private_overrides(args.set, deploy=args.command == "deploy")

    if args.command in ("run", "plan", "forget"):
        from flows import signals

        signals.install()  # SIGTERM/SIGINT/SIGUSR1: running jobs save a checkpoint, then the run stops
        signals.isolate_ephemeral_server()  # up until the run's final state is recorded
        signals.reap_orphan_servers()  # a temporary Prefect server left behind by a killed run
    try:
        return args.fn(args)
    except ValueError as exc:  # user errors: the message says what to fix
        print(f"keel: error: {secrets.redact(str(exc))}", file=sys.stderr)
        return 2
    except RunStopped as exc:
        print(f"keel: {exc}", file=sys.stderr)
        return 128 + int(exc.signum)


if __name__ == "__main__":
    sys.exit(main())
