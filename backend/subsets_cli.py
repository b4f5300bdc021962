"""``python -m backend subset NAME …``: save, list, rename, delete and combine saved subsets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from backend import subsets
from backend.progress import bar as progress_bar
from backend.selection import BadSelection, Selection


def _recipe(path: Path) -> Selection:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BadSelection(f"cannot read recipe {path}: {e}") from None
    return Selection.from_dict(data.get("recipe", data) if isinstance(data, dict) else data)


def cmd_subset(args: argparse.Namespace) -> int:
    name, action = args.name, args.action
    if action == "save":
        given = [x for x in (args.where, args.recipe, args.baseline) if x is not None]
        if len(given) != 1:
            raise BadSelection("give exactly one of --where SQL, --recipe FILE or --baseline NAME")
        if args.baseline is not None:  # a DataComp baseline, its rules noted with the subset
            from backend.baselines import for_dataset

            spec = for_dataset(name, args.baseline)
            sel, args.note = spec.selection, args.note or spec.describe()
        else:
            sel = Selection(sql=args.where) if args.where is not None else _recipe(args.recipe)
        with progress_bar(f"save {args.subset}", total=1, leave=False) as bar:
            s = subsets.save(name, args.subset, sel, note=args.note, overwrite=args.force)
            bar.update()
        print(f"saved subset {s.name}: {s.count:,} rows")
    elif action == "list":
        found = subsets.list_subsets(name)
        if args.json:
            print(json.dumps([s.summary() for s in found], indent=2))
        elif not found:
            print(f"{name} has no subsets yet")
        for s in [] if args.json else found:
            stale = "  (saved on an older build)" if s.stale else ""
            print(f"{s.name:<24} {s.count:>10,}  {s.created}  {s.note}{stale}")
    elif action == "rm":
        subsets.delete(name, args.subset)
        print(f"deleted subset {args.subset}")
    elif action == "mv":
        subsets.rename(name, args.subset, args.target)
        print(f"renamed {args.subset} to {args.target}")
    elif action == "combine":
        s = subsets.combine(name, args.a, args.b, args.op, getattr(args, "as"))
        print(f"saved subset {s.name} = {args.a} {args.op} {args.b}: {s.count:,} rows")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``subset`` command and its actions, on the main CLI's subparsers."""
    p = sub.add_parser("subset", help="save, list, rename, delete and combine subsets of NAME")
    p.add_argument("name")
    acts = p.add_subparsers(dest="action", required=True)
    s = acts.add_parser("save", help="save the rows a condition or a recipe selects")
    s.add_argument("subset")
    s.add_argument("--where", help="an SQL condition on the samples columns")
    s.add_argument("--recipe", type=Path, help="a Selection recipe (JSON) file")
    s.add_argument("--baseline", help="a DataComp baseline by name (README: DataComp baselines)")
    s.add_argument("--note", default="")
    s.add_argument("--force", action="store_true", help="replace a subset of that name")
    ls = acts.add_parser("list", help="the saved subsets")
    ls.add_argument("--json", action="store_true")
    rm = acts.add_parser("rm", help="delete a subset")
    rm.add_argument("subset")
    mv = acts.add_parser("mv", help="rename a subset")
    mv.add_argument("subset")
    mv.add_argument("target")
    c = acts.add_parser("combine", help="A union|intersection|difference B --as C")
    c.add_argument("a")
    c.add_argument("op", choices=subsets.OPS)
    c.add_argument("b")
    c.add_argument("--as", required=True, metavar="C", help="name of the new subset")
    p.set_defaults(func=cmd_subset)
