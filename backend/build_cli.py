"""``python -m backend build`` and ``python -m backend demo``: make a dataset from a source, or
the offline demo through :func:`backend.pipeline.build_demo`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backend import paths
from backend.executor import add_arguments as add_executor_arguments
from backend.executor import from_args
from backend.progress import bar as progress_bar
from backend.progress import shard_bar, step_progress
from backend.sources import FORMATS


def print_build(result: Any, as_json: bool) -> None:
    """The ingest step's summary: rows, rejects and why (or its record as JSON)."""
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
    from backend.profiles import parse_mapping

    mapping = parse_mapping(args.map_column)
    joined = {"profile": args.profile, "mapping": mapping} if args.metadata else {}
    if joined:  # the profile and mapping are the metadata's, not the downloaded shards'
        args.profile, mapping = None, {}
    bar, update = shard_bar(f"ingest {args.name}")
    try:
        result = build(args.name, args.source, args.format, workers=args.workers,
                       progress=update, executor=from_args(args), profile=args.profile,
                       mapping=mapping, keep_precision=args.keep_precision,
                       embedding_model=args.embedding_model)  # fmt: skip
    finally:
        bar.close()
    print_build(result, args.json)
    if joined:
        from backend.metadata_join import join_metadata

        rec = join_metadata(args.name, args.metadata, **joined)
        print(f"joined {args.metadata} by {rec['joined_on']} ({rec['name'] or 'no known'} "
              f"profile): {rec['matched_rows']} of {rec['rows']} rows matched; "
              f"{rec['metadata_rows_not_downloaded']} metadata rows were not downloaded",
              file=sys.stderr if args.json else sys.stdout)  # fmt: skip
    return 0


class TerminalReporter:
    """The demo pipeline on a terminal: a bar per step (per part), the steps' summary lines
    on stdout (stderr under ``--json``, which keeps stdout for the build record)."""

    def __init__(self, name: str, as_json: bool) -> None:
        self.name, self.as_json = name, as_json

    @contextmanager
    def stage(self, step: str, text: str) -> Iterator[Any]:
        if step not in ("generate", "ingest"):
            with step_progress(step) as update:  # a bar per part: "embed img", "map umap"
                yield update
            return
        bar, tick = self._one_bar(step)
        try:
            yield tick
        finally:
            bar.close()

    def _one_bar(self, step: str) -> tuple[Any, Any]:
        """Generate's bar over items, or ingest's over shards (with the rows read), and its
        ``tick(part, done, total, rows=None)``."""
        if step == "ingest":
            bar, update = shard_bar(f"ingest {self.name}")
            return bar, lambda part, done, total, rows=0: update(done, total, rows)
        bar = progress_bar("generate demo", unit="item")

        def tick(part: str, done: int, total: int, rows: int | None = None) -> None:
            bar.total, bar.n = total, done
            bar.refresh()

        return bar, tick

    def done(self, step: str, record: Any) -> None:
        from backend.steps_cli import print_embedded, print_indexed, print_mapped

        out = sys.stderr if self.as_json else sys.stdout
        if step == "ingest":
            print_build(record, self.as_json)
        elif step == "embed":
            print_embedded(record, out)
        elif step == "index":
            print_indexed(record, out)
        elif step == "map":
            print_mapped(record, out)
        elif step == "score":
            from backend.safety.command import print_score_and_dedup

            print_score_and_dedup(*record)
        elif step == "concepts":
            print(f"concepts: {record.get('concepts', '?')} mined from the captions",
                  file=sys.stderr)  # fmt: skip

    def note(self, text: str) -> None:
        print(f"note: {text}", file=sys.stderr)


def cmd_demo(args: argparse.Namespace) -> int:
    from backend.pipeline import DemoPlan, build_demo

    if args.if_missing and paths.store_path(args.name).is_file():
        print(f"dataset {args.name!r} is already built at {paths.dataset_dir(args.name)}")
        return 0
    clip = {k: getattr(args, k) for k in ("clip_model", "clip_pretrained", "clip_checkpoint")}
    plan = DemoPlan(name=args.name, rows=args.rows, seed=args.seed, workers=args.workers,
                    through="ingest" if args.no_embed else "concepts", model=args.model,
                    clip=clip, device=args.device, batch_size=args.batch_size,
                    executor=lambda: from_args(args))  # fmt: skip
    build_demo(plan, TerminalReporter(args.name, args.json))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``build`` verb (the ``demo`` verb: :func:`add_demo_parser`)."""
    from backend.profiles import BY_NAME as PROFILE_NAMES

    b = sub.add_parser("build", help="ingest a source folder or file as dataset NAME")
    b.add_argument("name")
    b.add_argument("--source", required=True, type=Path)
    b.add_argument("--format", default="auto", choices=FORMATS)
    b.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    b.add_argument("--json", action="store_true", help="print the result as JSON")
    b.add_argument("--profile", default=None, choices=sorted(PROFILE_NAMES),
                   help="the known pool the tables come from (default: detected from the "
                   "columns); a profile that does not fit is an error naming what is missing")
    b.add_argument("--map-column", action="append", default=None, metavar="CANONICAL=COLUMN",
                   help="map a column by hand, e.g. nsfw=my_nsfw_score, caption=alt (repeatable)")
    b.add_argument("--metadata", type=Path, default=None,
                   help="the pool's metadata parquet (file or folder) to join to downloaded "
                   "shards by uid (img2dataset output of DataComp …); --profile and "
                   "--map-column then apply to it")
    b.add_argument("--keep-precision", action="store_true",
                   help="keep shipped vectors in the precision given (default: float16)")
    b.add_argument("--embedding-model", default=None, metavar="MODEL",
                   help="the model of shipped vectors whose source does not say "
                   "(clip-retrieval folders), e.g. ViT-B-32/openai")
    add_executor_arguments(b)
    b.set_defaults(func=cmd_build)


def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    """The ``demo`` verb: generate the offline demo and build it (every step)."""
    from backend.steps_cli import add_model_arguments

    d = sub.add_parser("demo", help="generate the offline demo dataset and build it")
    d.add_argument("--name", default="demo")
    d.add_argument("--rows", type=int, default=5000)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--workers", type=int, default=None)
    d.add_argument("--if-missing", action="store_true", help="do nothing if already built")
    d.add_argument("--json", action="store_true")
    d.add_argument("--no-embed", action="store_true",
                   help="stop after ingest (skip embed, index, map, scores and duplicates)")
    add_executor_arguments(d)
    add_model_arguments(d)
    d.set_defaults(func=cmd_demo)
