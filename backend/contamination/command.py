"""``python -m backend contamination NAME --eval PATH``: is an evaluation set inside the pool?"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from backend.contamination.matchers import PHASH_THRESHOLD

TEMPLATE = "a photo of a {}."


def read_prompts(prompts: Path | None, classes: Path | None, template: str) -> list[str]:
    """Prompts given verbatim (``--prompts``) and class names put in ``template``
    (``--classes``), one a line, blank lines skipped."""
    out: list[str] = []
    for path, fmt in ((prompts, "{}"), (classes, template)):
        if path is None:
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read {path}: {e}") from None
        if "{}" not in fmt:
            raise ValueError(f"--template must hold {{}} where the class name goes: {fmt!r}")
        out.extend(fmt.replace("{}", line.strip()) for line in lines if line.strip())
    return out


def _print_text(rep: dict) -> None:
    n, hit = rep["eval_images"], rep["matched_eval_images"]
    share = f" ({hit / n:.1%})" if n else ""
    print(f"{rep['eval_name']}: {n:,} eval images checked, {hit:,} with a match in the pool"
          f"{share}; {rep['matched_rows']:,} pool rows matched -> subset {rep['subset']}")
    for kind, m in rep["methods"].items():
        if m.get("status") != "run":
            print(f"  {kind:<9} not run: {m['why']} (run: {m['command']})")
            continue
        c = rep["by_kind"][kind]
        how = ", ".join(f"{k} {m[k]}" for k in ("threshold", "model") if m.get(k) is not None)
        print(f"  {kind:<9} {c['eval_images']:>6,} eval images, {c['rows']:>8,} rows"
              + (f"  [{how}]" if how else ""))
    for reason, count in rep["rejects"].items():
        print(f"  skipped {count:,} eval items: {reason}")
    for p in rep["pairs"][:20]:
        print(f"  {p['kind']:<9} {p['score']:>8.4g}  row {p['row_id']:>9}  {p['eval']}")
    if len(rep["pairs"]) > 20:
        print(f"  … {len(rep['pairs']) - 20:,} more pairs (--json, or the Safety page)")
    print(f"exclude them: put subset {rep['subset']} under 'none of' (Browse or Export)")


def cmd_contamination(args: argparse.Namespace) -> int:
    from backend.contamination.audit import run
    from backend.progress import bar as progress_bar

    prompts = read_prompts(args.prompts, args.classes, args.template)
    bar = progress_bar("read eval set", unit="img")

    def update(_what: str, done: int, _total: int) -> None:
        bar.n = done
        bar.refresh()

    try:
        rep = run(args.name, args.eval, args.eval_name, args.format, prompts,
                  args.phash_threshold, args.embed_threshold, progress=update)  # fmt: skip
    finally:
        bar.close()
    if args.json:
        print(json.dumps(rep, indent=2, ensure_ascii=False))
    else:
        _print_text(rep)
    if rep["rejects"]:
        print(f"note: {sum(rep['rejects'].values())} eval items skipped (see above)",
              file=sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``contamination`` command, on the main CLI's subparsers."""
    from backend.sources import FORMATS

    p = sub.add_parser("contamination", help="find an evaluation set's images and captions "
                       "in dataset NAME (exact, pHash, embedding, caption)")  # fmt: skip
    p.add_argument("name")
    p.add_argument("--eval", required=True, type=Path, metavar="PATH",
                   help="the eval set: image folder, .tar shards, parquet with image bytes, or "
                   "a clip-retrieval embedding folder of the pool's model")
    p.add_argument("--eval-name", default=None, help="name to store it under (default: stem)")
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--prompts", type=Path, default=None, metavar="FILE",
                   help="eval prompts to find in pool captions, one a line")
    p.add_argument("--classes", type=Path, default=None, metavar="FILE",
                   help="class names, one a line, looked for as --template prompts")
    p.add_argument("--template", default=TEMPLATE, help=f"default: {TEMPLATE!r}")
    p.add_argument("--phash-threshold", type=int, default=PHASH_THRESHOLD,
                   help=f"bits of 64 (default {PHASH_THRESHOLD})")
    p.add_argument("--embed-threshold", type=float, default=None,
                   help="cosine (default: calibrated per model; see the margin gallery)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_contamination)
