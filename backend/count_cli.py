"""``python -m backend count NAME --where SQL [--json]``: the UI's SQL box from the command line.

The condition goes through exactly what the app applies to a user's text: the guard of
:mod:`backend.sqlguard` and the limits of :mod:`backend.bounded` (the CLI's other verbs trust
the local user and have no time limit; this one does not). Prints the number of matching rows,
or one line saying why the condition was refused and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from backend import bounded, browse
from backend.selection import BadSelection, Selection
from backend.store import connect


def cmd_count(args: argparse.Namespace) -> int:
    con = bounded.wrap(connect(args.name))
    try:
        total = con.execute("SELECT count(*) FROM samples").fetchone()[0]
        try:
            n = browse.count(con, Selection(sql=args.where))
        except BadSelection as e:
            print(f"refused: {e}", file=sys.stderr)
            return 2
    finally:
        con.close()
    if args.json:
        lim = con.limits
        print(json.dumps({"dataset": args.name, "where": args.where, "rows": n, "of": total,
                          "limits": {"seconds": lim.seconds, "memory": lim.memory}}))  # fmt: skip
    else:
        print(n)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``count`` command, on the main CLI's subparsers."""
    p = sub.add_parser("count", help="rows of NAME a WHERE condition matches, checked and "
                       "bounded exactly as in the app's SQL box")  # fmt: skip
    p.add_argument("name")
    p.add_argument("--where", required=True, help="an SQL condition on the samples columns")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_count)
