"""``python -m backend embed | index | map NAME``: the build steps after ingest, one verb each,
with a bar per part and one summary line per result."""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

from backend.executor import add_arguments as add_executor_arguments
from backend.executor import from_args
from backend.progress import step_progress


def print_embedded(rec: dict[str, Any], out: IO[str]) -> None:
    """Which model embedded each kind (and a note when CLIP could not load)."""
    if rec.get("clip_unavailable"):
        print(
            f"note: {rec['clip_unavailable']}\n      Using the packaged models instead: "
            "caption search by meaning and image-to-image similarity; no text-to-image.",
            file=sys.stderr,
        )
    for kind, info in rec["kinds"].items():
        print(f"embedded {kind}: {info.get('model')} (dim {info.get('dim')}, "
              f"{info.get('rows_per_s', '-')} rows/s)", file=out)  # fmt: skip


def print_indexed(built: dict[str, Any], out: IO[str]) -> None:
    for kind, meta in built["faiss"].items():
        print(f"indexed {kind}: {meta.get('factory')} over {meta.get('n')} rows", file=out)
    print(f"keyword index: {built['keyword'].get('docs')} captions", file=out)


def print_mapped(rec: dict[str, Any], out: IO[str]) -> None:
    v = rec["vectors"]
    print(
        f"mapped {rec['mapped']} of {rec['n']} rows by {v['kind']} vectors ({v['model']}) with "
        f"{rec['method']}; {rec['k']} clusters; {rec['nan_rows']} rows without a usable vector; "
        f"{rec['seconds']:.1f} s",
        file=out,
    )
    if rec.get("method_note"):
        print(f"note: {rec['method_note']}", file=sys.stderr)


def cmd_embed(args: argparse.Namespace) -> int:
    from backend.embed import embed

    with step_progress("embed") as update:
        rec = embed(args.name, mode=args.model, clip_model=args.clip_model,
                    clip_pretrained=args.clip_pretrained, clip_checkpoint=args.clip_checkpoint,
                    device=args.device, batch_size=args.batch_size, rebuild=args.rebuild,
                    progress=update, executor=from_args(args))  # fmt: skip
    print_embedded(rec, sys.stdout)
    return cmd_index(args)


def cmd_index(args: argparse.Namespace) -> int:
    from backend.search import build_indexes

    with step_progress("index") as update:
        built = build_indexes(args.name, progress=update, executor=from_args(args))
    print_indexed(built, sys.stdout)
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from backend.map import build_map

    out = sys.stderr if args.json else sys.stdout  # keep --json stdout clean
    with step_progress("map") as update:
        rec = build_map(args.name, vectors=args.vectors, sample=args.sample or 200_000,
                        clusters=args.clusters, progress=update,
                        executor=from_args(args))  # fmt: skip
    print_mapped(rec, out)
    if args.json:
        print(json.dumps(rec, indent=2, default=str))
    return 0


def add_model_arguments(sp: argparse.ArgumentParser) -> None:
    """Which model embeds: the ``embed`` and ``demo`` verbs' options."""
    sp.add_argument("--model", default="auto", choices=("auto", "clip", "packaged"),
                    help="auto: CLIP when its weights load, else the packaged models")
    sp.add_argument("--clip-model", default=None, help="open_clip model (ViT-B-32)")
    sp.add_argument("--clip-pretrained", default=None, help="tag (laion2b_s34b_b79k)")
    sp.add_argument("--clip-checkpoint", default=None, help="local open_clip weights file")
    sp.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    sp.add_argument("--batch-size", type=int, default=None)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``embed``, ``index`` and ``map`` verbs."""
    e = sub.add_parser("embed", help="embed images and captions, then build the search indexes")
    e.add_argument("name")
    e.add_argument("--rebuild", action="store_true", help="re-embed with another model")
    add_executor_arguments(e)
    add_model_arguments(e)
    e.set_defaults(func=cmd_embed)

    x = sub.add_parser("index", help="build the FAISS and keyword indexes of NAME")
    x.add_argument("name")
    add_executor_arguments(x)
    x.set_defaults(func=cmd_index)

    m = sub.add_parser("map", help="place NAME's rows on a 2-D map and cluster them")
    m.add_argument("name")
    m.add_argument("--sample", type=int, default=200_000,
                   help="fit UMAP on this many rows, place the rest by transform")
    m.add_argument("--clusters", type=int, default=None, help="k (default: from the row count)")
    m.add_argument("--vectors", choices=("image", "text"), default=None,
                   help="which embeddings (default: CLIP image, else caption vectors)")
    m.add_argument("--json", action="store_true")
    add_executor_arguments(m)
    m.set_defaults(func=cmd_map)
