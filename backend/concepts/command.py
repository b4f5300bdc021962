"""``python -m backend concepts NAME``: count a vocabulary's concepts in a dataset's captions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from backend.executor import add_arguments, from_args
from backend.progress import step_bars


def vocabulary(name: str, spec: str, vocab_name: str | None = None, top: int = 1000):
    """The vocabulary ``spec`` names: ``imagenet``, ``mined`` (from NAME's captions) or a file."""
    from backend.concepts import vocab as v
    from backend.concepts.run import mine_store

    if spec == "imagenet":
        voc = v.imagenet()
    elif spec == "mined":
        voc = mine_store(name, top=top)
    else:
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"no vocabulary file {spec!r} (or use imagenet / mined)")
        default = path.stem if path.stem != "metadata" else "metadata"
        voc = v.parse(vocab_name or _safe(default), path.read_bytes(), path.name)
    if vocab_name:
        voc.name = vocab_name
    return voc


def _safe(stem: str) -> str:
    import re

    out = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_.-")[:64]
    return out or "vocab"


def cmd_concepts(args: argparse.Namespace) -> int:
    from backend.concepts.run import analyse, load

    voc = vocabulary(args.name, args.vocab, args.vocab_name, args.mine_top)
    for note in voc.notes:
        print(f"note: {note}", file=sys.stderr)
    bars, update = step_bars()
    try:
        summary = analyse(args.name, voc, plurals=not args.no_plurals, images=args.images,
                          progress=update, executor=from_args(args))  # fmt: skip
    finally:
        for b in bars.values():
            b.close()
    res = load(args.name, voc.name)
    table = res.counts.to_pylist()
    table.sort(key=lambda r: (-r["caption_count"], r["concept_id"]))
    if args.top:
        table = table[: args.top]
    if args.json:
        print(json.dumps({"summary": summary, "counts": table}, indent=2, default=str,
                         ensure_ascii=False))  # fmt: skip
        return 0
    if args.images:
        print(f"note: {summary['image_note']}", file=sys.stderr)
    sl = summary["caption_slope"]
    print(
        f"{voc.name}: {summary['concepts']} concepts over {summary['rows']} rows; "
        f"{summary['rows_with_concept']} rows name at least one; slope "
        + (f"{sl['slope']:.2f}" if sl["slope"] is not None else f"n/a ({sl['reason']})")
    )
    for r in table:
        img = f"  image {r['image_count']:>8}" if "image_count" in r else ""
        print(f"{r['caption_count']:>9}{img}  {r['concept']}")
    return 0


def add_parser(sub) -> None:
    """Add the ``concepts`` subcommand to the CLI's subparsers."""
    c = sub.add_parser("concepts", help="count a vocabulary's concepts in NAME's captions")
    c.add_argument("name")
    c.add_argument("--vocab", default="imagenet",
                   help="imagenet, mined, or a file: one concept a line, concept<TAB>syn1;syn2, "
                   "CSV, or a MetaCLIP metadata.json list (default imagenet)")  # fmt: skip
    c.add_argument("--vocab-name", default=None, help="name of the result set (default: from "
                   "--vocab)")  # fmt: skip
    c.add_argument("--mine-top", type=int, default=1000, help="size of a mined vocabulary")
    c.add_argument("--no-plurals", action="store_true", help="do not fold -s/-es plurals")
    c.add_argument("--images", action="store_true", help="also tag images (CLIP zero-shot, "
                   "else the packaged ImageNet model for --vocab imagenet)")  # fmt: skip
    c.add_argument("--top", type=int, default=None, help="print only the N most frequent")
    c.add_argument("--json", action="store_true")
    add_arguments(c)
    c.set_defaults(func=cmd_concepts)
