"""``python -m backend``: build, inspect and demo datasets without a browser."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from backend import paths
from backend.sources import FORMATS, SourceError


def _bar_progress(desc: str):
    """A tqdm bar over shards that also shows how many rows were read."""
    bar = tqdm(desc=desc, unit="shard", file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total: int, rows: int) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix(rows=rows)
        bar.refresh()

    return bar, update


def _print_build(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.__dict__, indent=2))
        return
    print(
        f"built {result.name}: {result.rows} rows, {result.rejects} rejected "
        f"({result.shards} shards, {result.resumed_shards} resumed) in {result.seconds:.1f} s"
    )
    for reason, n in result.reasons.items():
        print(f"  rejected {n:>6}  {reason}")


def cmd_build(args: argparse.Namespace) -> int:
    from backend.ingest import build

    bar, update = _bar_progress(f"ingest {args.name}")
    try:
        result = build(args.name, args.source, args.format, workers=args.workers, progress=update)
    finally:
        bar.close()
    _print_build(result, args.json)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from backend.demo import generate
    from backend.ingest import build

    name = args.name
    if args.if_missing and paths.store_path(name).is_file():
        print(f"dataset {name!r} is already built at {paths.dataset_dir(name)}")
        return 0
    source = paths.dataset_dir(name) / "source"
    truth = source / "ground_truth.json"
    current = json.loads(truth.read_text()) if truth.is_file() else {}
    if current.get("rows_requested") != args.rows or current.get("seed") != args.seed:
        bar = tqdm(desc="generate demo", unit="item", file=sys.stderr, dynamic_ncols=True)

        def gen_update(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            generate(source, rows=args.rows, seed=args.seed, progress=gen_update)
        finally:
            bar.close()
    bar, update = _bar_progress(f"ingest {name}")
    try:
        result = build(name, source, "webdataset", workers=args.workers, progress=update)
    finally:
        bar.close()
    _print_build(result, args.json)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from backend.catalog import summary

    info = summary(args.name)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(f"{info['name']}: {info['rows']} rows, {info['rejects']} rejected")
        print(f"  source: {info.get('source')} ({info.get('format')})")
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m backend", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="ingest a source folder or file as dataset NAME")
    b.add_argument("name")
    b.add_argument("--source", required=True, type=Path)
    b.add_argument("--format", default="auto", choices=FORMATS)
    b.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    b.add_argument("--json", action="store_true", help="print the result as JSON")
    b.set_defaults(func=cmd_build)

    d = sub.add_parser("demo", help="generate the offline demo dataset and build it")
    d.add_argument("--name", default="demo")
    d.add_argument("--rows", type=int, default=5000)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--workers", type=int, default=None)
    d.add_argument("--if-missing", action="store_true", help="do nothing if already built")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_demo)

    i = sub.add_parser("info", help="row, reject and step counts of dataset NAME")
    i.add_argument("name")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    ls = sub.add_parser("list", help="the datasets in the workspace")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (SourceError, paths.BadName, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
