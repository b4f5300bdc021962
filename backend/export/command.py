"""``python -m backend export``: the export subcommand (parser and runner)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from backend.export.run import FORMATS
from backend.progress import bar as progress_bar


def add_parser(sub: argparse._SubParsersAction) -> None:
    x = sub.add_parser("export", help="write a selection, subset or all of NAME for training")
    x.add_argument("name")
    what = x.add_mutually_exclusive_group(required=True)
    what.add_argument("--subset", help="a saved subset's name")
    what.add_argument("--where", help="an SQL condition over the samples columns")
    what.add_argument("--selection", help="a Selection recipe as JSON (as a manifest holds)")
    what.add_argument("--all", action="store_true", help="every row")
    what.add_argument("--baseline", help="a DataComp baseline by its DataComp name, e.g. "
                      "basic_filter, clip_score_l14_30_percent, laion2b, text_based, or A+B "
                      "(README: DataComp baselines)")  # fmt: skip
    x.add_argument("--image-targets", type=Path, help="image_based: ImageNet-1k image "
                   "embeddings (.npy, or DataComp's in1k_clip_vit_l14_*.pt) by the model of "
                   "the dataset's image vectors (default: its text tower on the class names)")
    x.add_argument("--clusters", type=int, help="image_based: k-means centroids "
                   "(default: one per 128 caption-filtered rows, as DataComp)")
    x.add_argument("--format", required=True, choices=FORMATS)
    x.add_argument("--out", required=True,
                   help="a plain name under <dataset>/exports/, or an absolute folder")  # fmt: skip
    x.add_argument("--columns", help="comma-separated columns (default: all)")
    x.add_argument("--shard-size", type=int, default=10_000, help="rows per WebDataset tar")
    x.add_argument("--overwrite", action="store_true", help="replace an existing export")
    x.add_argument("--status", type=Path, help=argparse.SUPPRESS)  # progress file for the UI
    x.add_argument("--json", action="store_true", help="print the result as JSON")
    x.set_defaults(func=run)


def _selection(args: argparse.Namespace):
    from backend.selection import Selection

    if getattr(args, "baseline", None):
        from backend.baselines import for_dataset

        args.baseline_spec = for_dataset(args.name, args.baseline, targets=args.image_targets,
                                         clusters=args.clusters)  # refuses in one line
        return args.baseline_spec.selection
    if args.where is not None:
        try:
            return Selection(sql=args.where)
        except TypeError as e:
            raise ValueError("--where needs the SQL filter of the Selection (not available in "
                             "this version)") from e  # fmt: skip
    if args.selection is not None:
        try:
            return Selection.from_dict(json.loads(args.selection))
        except (ValueError, TypeError, AttributeError) as e:
            raise ValueError(f"--selection is not a valid Selection recipe: {e}") from e
    return None


def run(args: argparse.Namespace) -> int:
    from backend.export.jobs import StatusFile
    from backend.export.run import export

    status = StatusFile(args.status, format=args.format, export_name=str(args.out)) \
        if args.status else None  # fmt: skip
    bar = progress_bar(f"export {args.name}", unit="row")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if status:
            status(done, total)

    out = Path(args.out) if Path(args.out).is_absolute() else args.out
    try:
        result = export(
            args.name,
            selection=_selection(args),
            subset=args.subset,
            fmt=args.format,
            out=out,
            columns=[c.strip() for c in args.columns.split(",") if c.strip()]
            if args.columns else None,  # fmt: skip
            shard_size=args.shard_size,
            overwrite=args.overwrite,
            progress=progress,
            allow_absolute=True,
        )
    except BaseException as e:
        if status:
            status.write(state="failed", error=str(e) or type(e).__name__)
        raise
    finally:
        bar.close()
    if getattr(args, "baseline_spec", None) is not None:
        _record_baseline(result.manifest, args.baseline_spec)
    summary = {"count": result.count, "out": str(result.out), "manifest": str(result.manifest),
               "seconds": round(result.seconds, 3), "skipped": result.skipped,
               "files": result.files, "notes": result.notes}  # fmt: skip
    if status:
        status.write(state="done", **{k: summary[k] for k in ("count", "out", "seconds")})
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"exported {result.count} rows of {args.name} as {args.format} to {result.out} "
              f"in {result.seconds:.1f} s ({len(result.files)} file(s))")  # fmt: skip
        for note in result.notes:
            print(f"note: {note}")
    return 0


def _record_baseline(manifest: Path, spec) -> None:
    """Name the DataComp baseline (and how it is approximate here) in the export's manifest."""
    from backend.manifest import read_manifest, write_json_atomic

    data = read_manifest(manifest)
    data["baseline"] = {"name": spec.name, "notes": spec.notes, "columns": spec.columns,
                        "rules": "mlfoundations/datacomp baselines/apply_filter.py"}  # fmt: skip
    write_json_atomic(manifest, data)
    for note in spec.notes:
        print(f"baseline {spec.name}: {note}")
