"""``python -m backend search NAME``: the best rows for a text, keywords, an image or a row,
with which vectors and model answered."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cmd_search(args: argparse.Namespace) -> int:
    from backend.search import Searcher

    s = Searcher(args.name)
    if args.text is not None:
        res = s.text(args.text, k=args.k)
    elif args.keywords is not None:
        res = s.keywords(args.keywords, k=args.k)
    elif args.hybrid is not None:
        res = s.hybrid(args.hybrid, k=args.k)
    elif args.image is not None:
        res = s.image(Path(args.image).read_bytes(), k=args.k)
    elif args.caption_row is not None:
        res = s.like_caption(args.caption_row, k=args.k)
    else:
        res = s.like_row(args.row, k=args.k)
    out = [
        {"row_id": h["row_id"], "score": round(h["score"], 4), "caption": h["caption"]}
        for h in res.hits
    ]
    if args.json:  # which vectors and model answered travel with the results
        print(json.dumps({"vectors": res.vectors, "model": res.model, "space": res.space,
                          "notes": res.notes, "results": out}, indent=2, ensure_ascii=False))
    else:
        for note in res.notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"{len(out)} results from {res.space} in {res.seconds * 1000:.0f} ms"
              + (f" (model: {res.model})" if res.model else ""))
        for h in out:
            print(f"{h['row_id']:>9}  {h['score']:.3f}  {h['caption']}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``search`` verb."""
    s = sub.add_parser("search", help="search NAME; prints the best rows")
    s.add_argument("name")
    q = s.add_mutually_exclusive_group(required=True)
    q.add_argument("--text", help="semantic search (text→image with CLIP, else captions)")
    q.add_argument("--keywords", help="BM25 keyword search over captions")
    q.add_argument("--hybrid", help="keywords and meaning, fused by rank")
    q.add_argument("--image", help="path of an image to find look-alikes of")
    q.add_argument("--row", type=int, help="row id: more like this")
    q.add_argument("--caption-row", type=int, metavar="ROW",
                   help="row id: images like this row's caption (its text vector)")
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_search)
