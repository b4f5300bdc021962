"""``python -m backend linkrot`` and ``python -m backend blocklist``: the two pool audits that
act on URLs and hash lists (parsers and runners)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _selection(args: argparse.Namespace):
    """The Selection the audit looks at: a saved subset, an SQL condition, a recipe, or all."""
    from backend.selection import BadSelection, Selection

    if args.subset:
        return Selection(subsets_all=[args.subset])
    if args.where:
        return Selection(sql=args.where)
    if args.selection:
        try:
            return Selection.from_dict(json.loads(args.selection))
        except (ValueError, BadSelection) as e:
            raise ValueError(f"--selection is not a valid Selection recipe: {e}") from None
    return Selection()


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def cmd_linkrot(args: argparse.Namespace) -> int:
    from backend import linkrot, paths
    from backend.progress import bar as progress_bar

    if not paths.store_path(args.name).is_file():
        print(f"error: dataset {args.name!r} is not built: run "
              f"`python -m backend build {args.name} --source PATH`", file=sys.stderr)
        return 2
    bars: list = []  # made on the first URL: bad input fails with one line, no empty bar

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(progress_bar(f"linkrot {args.name}", unit="url"))
        bars[0].total, bars[0].n = total, done
        bars[0].refresh()

    try:
        rep = linkrot.run(args.name, _selection(args), args.sample, args.seed,
                          concurrency=args.concurrency, per_host=args.per_host,
                          timeout=args.timeout, progress=progress)  # fmt: skip
    finally:
        for b in bars:
            b.close()
    if args.json:
        print(json.dumps(rep, indent=2, default=str))
        return 0
    lo_hi = rep["ci95"] or [None, None]
    print(f"link rot of {args.name}: {rep['alive']} of {rep['checked']} URLs alive "
          f"({_pct(rep['alive_share'])}, 95% CI {_pct(lo_hi[0])}–{_pct(lo_hi[1])}) in "
          f"{rep['seconds']:.1f} s; sampled {rep['sampled']} of {rep['rows_with_url']:,} rows "
          f"with a URL")  # fmt: skip
    nf = rep["not_fetched"]
    if any(nf.values()):
        print(f"  not fetched: {nf['not_http']} not http(s), {nf['refused']} refused by the "
              "host guard")
    y = rep["expected_yield"]
    if y:
        print(f"  expected re-download yield: {y['rows']:,} of {y['of']:,} rows "
              f"({y['lo']:,}–{y['hi']:,})")
    if rep["bytes_compared"]:
        print(f"  bytes changed: {rep['bytes_changed']} of {rep['bytes_compared']} alive images "
              "with a stored sha256")
    print("  outcomes: " + ", ".join(f"{k} {v}" for k, v in rep["outcomes"].items()))
    for d in rep["worst_domains"][:5]:
        print(f"  worst: {d['domain']:<30} {d['alive']}/{d['checked']} alive "
              f"({_pct(d['share'])}, CI {_pct(d['lo'])}–{_pct(d['hi'])}), {d['rows']:,} rows")
    print(f"  table: {rep['table']}; filter on link_alive to keep only alive rows")
    return 0


def cmd_blocklist(args: argparse.Namespace) -> int:
    from backend import blocklists

    if args.add is None:  # no list given: what has been applied, and the log
        recs = blocklists.lists(args.name)
        if args.json:
            print(json.dumps({"lists": recs, "log": blocklists.read_log(args.name)}, indent=2))
            return 0
        if not recs:
            print(f"{args.name}: no blocklist applied: `python -m backend blocklist "
                  f"{args.name} --add FILE --kind {'|'.join(blocklists.KINDS)}`")
        for r in recs:
            print(f"{r['list']:<20} {r['kind']:<7} {r['entries']:>7} entries  "
                  f"{r['rows']:>7} rows  {r['at']}  by {r['who']}")
        return 0
    if args.kind is None:
        raise ValueError(f"--add needs --kind ({'|'.join(blocklists.KINDS)})")
    from backend.executor import from_args

    rec = blocklists.add(args.name, args.add, args.kind, args.list_name, args.threshold,
                         args.who, executor=from_args(args))  # fmt: skip
    if args.json:
        print(json.dumps(rec, indent=2, default=str))
        return 0
    extra = f" within {rec['threshold']} bits" if "threshold" in rec else ""
    print(f"{rec['list']} ({rec['kind']}, {rec['entries']} entries){extra}: {rec['rows']} rows "
          f"flagged; {rec['rows_blocklisted']} rows on any list (subset "
          f"{blocklists.SUBSET!r}); logged in {blocklists.LOG}")
    if rec.get("rows_without_hash"):
        print(f"  not checked: {rec['rows_without_hash']} rows without a {rec['kind']} "
              "(no image bytes or hash)")
    print(f"  exclude them: Selection part \"none of {blocklists.SUBSET}\", e.g. "
          f"`python -m backend export {args.name} --selection "
          f"'{{\"subsets_none\": [\"{blocklists.SUBSET}\"]}}' --format parquet --out clean`")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    from backend import blocklists
    from backend.blocklist_match import PHASH_THRESHOLD

    lr = sub.add_parser("linkrot", help="sample NAME's URLs and check which still answer")
    lr.add_argument("name")
    what = lr.add_mutually_exclusive_group()
    what.add_argument("--subset", help="check a saved subset (default: every row)")
    what.add_argument("--where", help="an SQL condition over the samples columns")
    what.add_argument("--selection", help="a Selection recipe as JSON")
    lr.add_argument("--sample", type=int, default=1000, help="URLs to check (default 1000)")
    lr.add_argument("--seed", type=int, default=0)
    lr.add_argument("--concurrency", type=int, default=16, help="requests at once")
    lr.add_argument("--per-host", type=float, default=2.0,
                    help="requests per second to one host (0: no limit)")
    lr.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    lr.add_argument("--json", action="store_true")
    lr.set_defaults(func=cmd_linkrot)

    bl = sub.add_parser("blocklist", help="apply a hash or opt-out list to NAME (flag, log)")
    bl.add_argument("name")
    bl.add_argument("--add", type=Path, metavar="FILE", help="the list, one entry per line")
    bl.add_argument("--kind", choices=blocklists.KINDS)
    bl.add_argument("--threshold", type=int, default=None,
                    help=f"phash: Hamming bits (default {PHASH_THRESHOLD})")
    bl.add_argument("--list-name", default=None, help="(default: the file's name)")
    bl.add_argument("--who", default=None, help="who applied it, for the log (default: $USER)")
    bl.add_argument("--json", action="store_true")
    from backend.executor import add_arguments as add_executor_arguments

    add_executor_arguments(bl)  # row ranges as units: pHash popcounts, MD5 image reads
    bl.set_defaults(func=cmd_blocklist)
