"""``python -m backend mixture NAME …``: a cluster mixture from the command line.

Weights: ``--flatten`` (equal per cluster), ``--weights 0=2,3=0.5`` (others 0) or ``--match
SUBSET`` (that subset's cluster shares); drawn from the whole dataset or ``--from SUBSET``.
``--save SUBSET`` draws ``--rows N`` rows (``--seed``, ``--replace``) and saves them;
``--weights-out LABEL`` writes the per-row sampling-weight column. With neither, prints the
preview only.
"""

from __future__ import annotations

import argparse

from backend import bounded, mixture, subsets
from backend.mixture import MixtureError
from backend.selection import Selection
from backend.store import connect


def parse_weights(text: str) -> dict[int, float]:
    """``"0=2,3=0.5"`` as {0: 2.0, 3: 0.5}; a malformed pair is refused with what is wrong."""
    out: dict[int, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        c, sep, w = part.partition("=")
        try:
            if not sep:
                raise ValueError
            out[int(c)] = float(w)
        except ValueError:
            raise MixtureError(
                f"bad weight {part!r}: write CLUSTER=WEIGHT, e.g. 0=2,3=0.5"
            ) from None
    return out


def _weights(args: argparse.Namespace, counts: dict[int, int], con) -> dict[int, float]:
    picked = [args.flatten, args.weights is not None, args.match is not None]
    if sum(picked) != 1:
        raise MixtureError("give exactly one of --flatten, --weights or --match SUBSET")
    if args.flatten:
        return mixture.flatten(counts)
    if args.weights is not None:
        return parse_weights(args.weights)
    other = subsets.resolve(args.name, Selection(subsets_all=[args.match]))
    return mixture.shares(mixture.pool(con, other, args.name).counts())


def cmd_mixture(args: argparse.Namespace) -> int:
    base = Selection(subsets_all=[args.source]) if args.source else Selection()
    con = bounded.wrap(connect(args.name))
    try:
        p = mixture.pool(con, subsets.resolve(args.name, base), args.name)
        counts = p.counts()
        w = mixture.normalise(_weights(args, counts, con), counts)
    finally:
        con.close()
    rows = args.rows if args.rows is not None else len(p.row_ids)
    target = mixture.allocate(w, rows)
    print(f"{'cluster':>8} {'rows':>10} {'share':>7} {'weight':>7} {'target':>8}")
    for c, n in counts.items():
        print(f"{c:>8} {n:>10,} {n / len(p.row_ids):>7.1%} {w.get(c, 0):>7.1%} "
              f"{target.get(c, 0):>8,}")  # fmt: skip
    if args.save:
        s = mixture.resample(p, w, rows, args.seed, args.replace)
        rec = mixture.save(args.name, args.save, s, base, overwrite=args.force)
        print(f"saved subset {args.save}: {rec['draws']:,} draws, {rec['count']:,} distinct rows "
              f"(seed {args.seed}, {'with' if args.replace else 'without'} replacement)")
        for note in s.notes:
            print(f"note: {note}")
    elif p.without_cluster:
        print(f"note: {p.without_cluster:,} rows without a cluster take no part")
    if args.weights_out:
        path = mixture.write_weights(args.name, args.weights_out, p, w, base)
        print(f"wrote the sampling-weight column to {path}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``mixture`` command, on the main CLI's subparsers."""
    p = sub.add_parser("mixture", help="weight NAME's map clusters; draw a subset or write a "
                       "per-row sampling weight")  # fmt: skip
    p.add_argument("name")
    p.add_argument("--flatten", action="store_true", help="equal weight for every cluster")
    p.add_argument("--weights", help="CLUSTER=WEIGHT pairs, e.g. 0=2,3=0.5 (others 0)")
    p.add_argument("--match", metavar="SUBSET", help="the cluster shares of a saved subset")
    p.add_argument("--from", dest="source", metavar="SUBSET", help="draw from this subset")
    p.add_argument("--rows", type=int, help="rows to draw (default: as many as the pool has)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replace", action="store_true", help="draw with replacement")
    p.add_argument("--save", metavar="SUBSET", help="save the draw as this subset")
    p.add_argument("--weights-out", metavar="LABEL", help="write mixtures/LABEL.weights.parquet")
    p.add_argument("--force", action="store_true", help="replace a subset of that name")
    p.set_defaults(func=cmd_mixture)
