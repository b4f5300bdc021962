"""``python -m backend impact NAME --where SQL | --subset S [--base S] [--factor F] [--json]``:
the filter-impact summary (:mod:`backend.impact`) from the command line."""

from __future__ import annotations

import argparse
import json

from backend import bounded, impact, subsets
from backend.impact_tail import share_line
from backend.selection import BadSelection, Selection
from backend.store import connect


def cmd_impact(args: argparse.Namespace) -> int:
    if (args.where is None) == (args.subset is None):
        raise BadSelection("give exactly one of --where SQL or --subset NAME")
    kept = Selection(sql=args.where) if args.where is not None else \
        Selection(subsets_all=[args.subset])  # fmt: skip
    base = Selection(subsets_all=[args.base]) if args.base else Selection()
    con = bounded.wrap(connect(args.name))
    try:
        got = impact.dataset_inputs(con, args.name, None, args.vocab)
        imp = impact.measure(
            con, subsets.resolve(args.name, base), subsets.resolve(args.name, kept),
            hits=got["hits"], image_hits=got["image_hits"], labels=got["labels"],
            scores=got["scores"], min_count=args.min_count, name=args.name)  # fmt: skip
    finally:
        con.close()
    imp.attach(got)
    summary = imp.summary(args.factor)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"kept {imp.kept_rows:,} of {imp.base_rows:,} rows ({imp.removal:.1%} removed)")
    for g in imp.flags(args.factor)[: args.top]:
        print(f"  {g.removal:6.1%} removed ({g.removal / imp.removal:4.1f}x)  {g.kind}: {g.label} "
              f"({g.removed:,} of {g.base:,})")  # fmt: skip
    if imp.tail is not None:
        t = imp.tail
        print(f"long tail: slope {t['slope_before'].get('slope')} -> "
              f"{t['slope_after'].get('slope')}; base {share_line(t['shares_before'])}; kept "
              f"{share_line(t['shares_after'])}; {len(t['vanished'])} concepts vanish, "
              f"{len(t['below'])} fall below {t['min_count']}")  # fmt: skip
    for note in imp.notes:
        print(f"note: {note}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``impact`` command, on the main CLI's subparsers."""
    p = sub.add_parser("impact", help="what a filter or subset removes from NAME, group by group")
    p.add_argument("name")
    p.add_argument("--where", help="the kept rows: an SQL condition on the samples columns")
    p.add_argument("--subset", help="the kept rows: a saved subset")
    p.add_argument("--base", metavar="SUBSET", help="compare against this subset (default: all)")
    p.add_argument("--factor", type=float, default=impact.FACTOR,
                   help="flag groups removed at least this many times the overall rate")
    p.add_argument("--min-count", type=int, default=5, help="concepts falling under this count")
    p.add_argument("--vocab", help="the concept result set to use (default: the first)")
    p.add_argument("--top", type=int, default=20, help="flagged groups to print")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_impact)
