"""``python -m backend score`` and ``python -m backend dedup``: the CLI of the safety steps."""

from __future__ import annotations

import argparse
import json
import sys

from backend.executor import add_arguments, from_args
from backend.progress import step_bars


def cmd_score(args: argparse.Namespace) -> int:
    from backend.safety.run import score

    names = [s.strip() for s in args.scorers.split(",") if s.strip()] if args.scorers else None
    bars, update = step_bars()
    try:
        rec = score(args.name, names, chunk=args.chunk, rebuild=args.rebuild, progress=update,
                    executor=from_args(args), recompute=args.recompute)  # fmt: skip
    finally:
        for b in bars.values():
            b.close()
    for name, why in rec.get("skipped", {}).items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    for name, why in rec.get("kept_shipped", {}).items():
        print(f"kept shipped {name}: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps(rec, indent=2, default=str))
        return 0 if rec.get("scorers") or not rec.get("skipped") else 3
    if rec.get("status") == "skipped" and rec.get("kept_shipped") and not rec.get("skipped"):
        print("nothing to compute: the dataset ships these scores (see above)")
        return 0
    if rec.get("status") == "skipped":
        print("no scorer could run: install what the messages above name")
        return 3
    for name, info in rec["scorers"].items():
        if name not in rec["params"]["scorers"]:
            continue
        print(
            f"scored {name} ({info['model']}): {', '.join(info['columns'])}; "
            f"{info['errors']} rows failed; {info['rows_per_s'] or '-'} rows/s"
            + (f"; {info['resumed_chunks']} chunks resumed" if info["resumed_chunks"] else "")
        )
    if rec["errors"]:
        print(f"{rec['errors']} row(s) could not be scored: see score_errors.parquet")
    return 0


def cmd_dedup(args: argparse.Namespace) -> int:
    from backend.dedup import dedup

    bars, update = step_bars()
    try:
        rec = dedup(args.name, phash_threshold=args.phash_threshold,
                    semantic_threshold=args.semantic_threshold, progress=update)  # fmt: skip
    finally:
        for b in bars.values():
            b.close()
    for note in rec["notes"]:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(rec, indent=2, default=str))
        return 0
    for kind in ("exact", "phash", "semantic", "caption"):
        s, skip = rec[kind], rec.get("skipped", {}).get(kind)
        if skip:  # not "0 groups": it did not run
            print(f"{kind:>9}: not run ({skip['why']}); to run it: {skip['command']}")
            continue
        print(f"{kind:>9}: {s['groups']} groups, {s['rows']} rows, {s['removable']} removable")
    print(f"keep one per image group (WHERE is_dup_rep): {rec['kept']} of {rec['rows']} rows")
    return 0


def print_score_and_dedup(rec: dict, groups: dict) -> None:
    """One summary line on stderr for the scorers and the duplicate kinds (which did not
    run, and why the scorers skipped): the tail of the ``demo`` command."""
    for scorer, why in rec.get("skipped", {}).items():
        print(f"skipped {scorer}: {why}", file=sys.stderr)
    skipped = groups.get("skipped", {})
    print(f"scored {', '.join(rec.get('scorers', {}))}; duplicates: "
          + ", ".join(f"{k} not run" if k in skipped else f"{k} {groups[k]['groups']} groups"
                      for k in ("exact", "phash", "semantic", "caption")),
          file=sys.stderr)  # fmt: skip


def add_parser(sub) -> None:
    """Add the ``score`` and ``dedup`` subcommands to the CLI's subparsers."""
    from backend.dedup import SEMANTIC_THRESHOLD
    from backend.phash_pairs import PHASH_THRESHOLD
    from backend.safety import defaults, registry

    s = sub.add_parser("score", help="run safety and quality scorers over NAME's rows")
    s.add_argument("name")
    s.add_argument(
        "--scorers",
        default=None,
        help=f"comma-separated, or all (default: {','.join(defaults())}; "
        f"known: {','.join(registry())})",
    )
    s.add_argument("--chunk", type=int, default=256, help="rows per resumable chunk")
    s.add_argument("--rebuild", action="store_true", help="discard finished chunks first")
    s.add_argument("--recompute", action="store_true",
                   help="also compute scores the dataset ships (kept beside them as "
                   "<name>_computed, e.g. nsfw_computed)")
    s.add_argument("--json", action="store_true")
    add_arguments(s)
    s.set_defaults(func=cmd_score)

    d = sub.add_parser("dedup", help="find exact, near, semantic and caption duplicates")
    d.add_argument("name")
    d.add_argument(
        "--phash-threshold",
        type=int,
        default=PHASH_THRESHOLD,
        help=f"pHash Hamming distance, of 64 bits (default {PHASH_THRESHOLD})",
    )
    d.add_argument("--semantic-threshold", type=float, default=None,
                   help=f"image-embedding cosine (default {SEMANTIC_THRESHOLD} with CLIP "
                   "vectors; other image models are skipped unless this is given)")  # fmt: skip
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_dedup)
