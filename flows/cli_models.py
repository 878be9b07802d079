"""The `keel` commands about registered models: promote, models, lineage, forget (flows/cli.py wires them)."""
from __future__ import annotations

import json
import os


def _use_stack() -> None:
    from flows.cli import _use_stack as use

    use()


def cmd_run(args) -> int:
    from flows.cli import cmd_run as run

    return run(args)


def cmd_promote(args) -> int:
    import getpass

    from tasks.track.tracking import default_tracking_uri, promote

    _use_stack()
    if not args.reason.strip():
        raise ValueError("--reason is required: say why this version should be the champion")
    out = promote(args.tracking_uri or default_tracking_uri(), args.name, args.version, args.reason.strip(),
                  by=os.environ.get("KEEL_USER") or getpass.getuser())
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['name']} version {out['version']} is now champion (was: {out['previous_champion'] or 'none'}); "
              f"recorded: by {out['keel.promotion.by']} at {out['keel.promotion.at']}: {out['keel.promotion.reason']}")
    return 0


def cmd_models(args) -> int:
    from tasks.track.tracking import default_tracking_uri, list_models

    _use_stack()

    models = list_models(args.tracking_uri or default_tracking_uri())
    if args.json:
        print(json.dumps(models))
        return 0
    if not models:
        print("no registered models")
    for m in models:
        print(f"{m['name']}")
        for v in m["versions"]:
            metrics = " ".join(f"{k}={v['metrics'][k]}" for k in sorted(v["metrics"])
                               if "." not in k and k != "decontaminated")
            taint = "  TAINTED" if v["tainted"] else ""
            print(f"  v{v['version']:<4} {','.join(v['aliases']) or '-':<20} {v['created']}{taint}  {metrics}")
    return 0


def _tracking_uri(args) -> str:
    from tasks.track.tracking import default_tracking_uri

    if getattr(args, "tracking_uri", ""):
        return args.tracking_uri
    if getattr(args, "recipe", ""):
        from tasks.recipe import load_recipe

        return load_recipe(args.recipe).run.tracking_uri or default_tracking_uri()
    return default_tracking_uri()


def cmd_lineage(args) -> int:
    from tasks.govern import lineage

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
    from tasks.govern import forget, lineage
    from tasks.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    uri = recipe.run.tracking_uri or _tracking_uri(args)
    root = recipe.run.output_root
    if args.source:
        gone = forget.Forgotten(sources={args.source})
        added = forget.add_optout(recipe.legal.optout, "sources", args.source)
        seen = lineage.versions_with_source(uri, args.source)
        what = f"source {args.source}"
    else:
        gone = forget.expand(root, args.doc)  # its copies and near-duplicate cluster too
        added = forget.add_optout(recipe.legal.optout, "doc_ids", sorted(gone.doc_ids))
        added |= forget.add_optout(recipe.legal.optout, "content_sha256", sorted(gone.content_sha256))
        seen = lineage.versions_with_doc(uri, gone.doc_ids)
        what = f"document {args.doc}" + (f" and {len(gone.doc_ids) - 1} copies/near-duplicates" if len(gone.doc_ids) > 1 else "")
    moved = forget.taint(uri, seen, f"opt-out of {what}")
    print(f"opt-out {'added' if added else 'already present'}: {what} in {recipe.legal.optout}")
    for m in seen:
        print(f"  tagged tainted: {m['model']} v{m['version']}")
    for line in moved:
        print(f"  {line}")
    if args.purge:
        for line in forget.purge(root, gone) + forget.purge_tracked(uri, gone):
            print(f"  purge: {line}")
    if args.no_run:
        return 0
    args.set, args.json, args.until = [], args.json, ""
    return cmd_run(args)
