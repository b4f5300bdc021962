"""``python -m backend info | list | embeddings | synth | synth-vectors``: what the workspace's
datasets hold, their embedding sets, and synthetic datasets (and vectors) to test scale."""

from __future__ import annotations

import argparse
import json

from backend import paths


def cmd_embeddings(args: argparse.Namespace) -> int:
    from backend import embedding_sets

    if not paths.store_path(args.name).is_file():
        raise FileNotFoundError(f"no dataset {args.name!r}: run `python -m backend build`")
    if args.model:
        embedding_sets.name_model(args.name, args.model)
    if args.use:
        embedding_sets.use(args.name, args.use)
    sets = embedding_sets.summary(args.name)
    if args.json:
        print(json.dumps(sets, indent=2))
        return 0
    if not sets:
        print(f"{args.name}: no embeddings: run `python -m backend embed {args.name}`")
    for set_name, v in sets.items():
        mark = "*" if v["default"] else " "
        print(f"{mark} {set_name:<16} {v['kind']:<4} {v['dim']:>5}-d  {v['rows']:>9} rows  "
              f"{v['source']:<8} {v['dtype'] or '':<8} {v['model']}")
    if args.use or args.model:
        print(f"now rebuild what reads them: `python -m backend index {args.name}` and "
              f"`python -m backend map {args.name}`")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from backend.catalog import summary

    info = summary(args.name)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(f"{info['name']}: {info['rows']} rows, {info['rejects']} rejected")
        print(f"  source: {info.get('source')} ({info.get('format')})")
        if info.get("profile"):
            p = info["profile"]
            how = "forced" if p.get("forced") else "detected"
            print(f"  profile: {p.get('name') or 'none'} — {p.get('title')} ({how})")
        for col, sc in info.get("scores", {}).items():
            print(f"  score {col}: {sc['label']} [{sc['source']}; model {sc['model']}]")
        for set_name, v in info.get("embeddings", {}).items():
            print(f"  vectors {set_name}: {v['kind']} {v['dim']}-d, {v['model']} [{v['source']}]"
                  + (" (default)" if v.get("default") else ""))
        print(f"  steps:  {', '.join(info['steps']) or 'none'}")
        for reason, n in info.get("reasons", {}).items():
            print(f"  rejected {n:>6}  {reason}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from backend.catalog import summary

    names = paths.list_datasets()
    if args.json:
        print(json.dumps([summary(n) for n in names], indent=2, default=str))
    elif not names:
        print(f"no datasets under {paths.workspace()}: run `python -m backend demo`")
    for n in names if not args.json else []:
        s = summary(n)
        print(f"{n}\t{s['rows']} rows\t{s['rejects']} rejected\tsteps: {', '.join(s['steps'])}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from backend.synth import main as synth_main

    return synth_main([args.name, *args.rest])


def cmd_synth_vectors(args: argparse.Namespace) -> int:
    from backend.synth_vectors import main as synth_vectors_main

    return synth_vectors_main([args.name, *args.rest])


def add_embeddings_parser(sub: argparse._SubParsersAction) -> None:
    """The ``embeddings`` verb (listed after ``build``, as before the verbs had modules)."""
    es = sub.add_parser("embeddings", help="the embedding sets of NAME; pick the default one")
    es.add_argument("name")
    es.add_argument("--use", metavar="SET", help="make a shipped set (l14_img, or b32 for both "
                    "towers) the default; then rerun index and map")
    es.add_argument("--model", metavar="MODEL", help="name the model of shipped vectors of "
                    "unknown model, e.g. ViT-B-32/openai")
    es.add_argument("--json", action="store_true")
    es.set_defaults(func=cmd_embeddings)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``info``, ``list``, ``synth`` and ``synth-vectors`` verbs."""
    i = sub.add_parser("info", help="row, reject and step counts of dataset NAME")
    i.add_argument("name")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    ls = sub.add_parser("list", help="the datasets in the workspace")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    sy = sub.add_parser(
        "synth",
        help="write a synthetic 10^7-10^8-row dataset (parquet shards, no images) to test scale",
    )
    sy.add_argument("name")
    sy.add_argument(
        "rest",
        nargs=argparse.REMAINDER,
        help="--rows N [--shards S] [--root DIR] [--seed 0] [--no-concepts] [--overwrite]",
    )
    sy.set_defaults(func=cmd_synth)

    sv = sub.add_parser(
        "synth-vectors",
        help="give a synthetic dataset seeded synthetic image vectors and an index (bench only)",
    )
    sv.add_argument("name")
    sv.add_argument(
        "rest",
        nargs=argparse.REMAINDER,
        help="[--root DIR] [--seed 0] [--clusters K] [--index] [--workers W]",
    )
    sv.set_defaults(func=cmd_synth_vectors)
