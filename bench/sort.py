"""A sorted Browse page: keyset paging (``backend.keyset``) against the baselines it replaced.

    .venv/bin/python bench/sort.py [--rows 1000000]
    .venv/bin/python bench/sort.py --home /work/scale --name syn-100000000

Times ``backend.browse.page`` for page 1, page 2 and page ``--deep`` of each order, in the same
run as two baselines that read the same page's card columns in one query: by ``OFFSET`` (whose
cost grows with the page number) and by one keyset condition with ``OR … IS NULL`` (which DuckDB
cannot push into the scan). Unsorted
row order is shown for reference. Without ``--home`` it generates a ``backend.synth`` dataset
of ``--rows`` rows in a temporary folder (synthetic scores: ``clip_similarity`` has 21 values,
``nsfw`` is 0 for about 64% of rows, so ties are many; ``map_x`` is continuous, few ties).
"""

from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repo root

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from backend import browse, synth  # noqa: E402
from backend.selection import Selection, quote_ident  # noqa: E402
from backend.store import connect  # noqa: E402

LIMIT = 48
ORDERS = ("", "clip_similarity DESC", "nsfw ASC", "map_x DESC")


def _timed(fn: Any, repeat: int = 3) -> tuple[float, Any]:
    """Best of ``repeat`` wall times (the first run warms the file cache) and the result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _card(con: Any) -> str:
    cols = browse.columns(con)
    return ", ".join(quote_ident(c) for c in browse.CARD_COLUMNS if c in cols)


def _offset_ids(con: Any, sel: Selection, page: int) -> list[int]:
    """The page's ids by ``OFFSET``, its card columns read in the same query."""
    cols = browse.columns(con)
    return [r[0] for r in con.execute(
        f"SELECT {_card(con)} FROM samples {sel.order_limit(cols)} "
        f"LIMIT {LIMIT} OFFSET {(page - 1) * LIMIT}").fetchall()]  # fmt: skip


def _or_form_ids(con: Any, sel: Selection, anchor: tuple[Any, int]) -> list[int]:
    """The one-condition keyset this replaced (forward, from a non-NULL anchor; card columns in
    the same query)."""
    col, desc = sel.sort_key(browse.columns(con))
    q, past = quote_ident(col), "<" if desc else ">"
    return [r[0] for r in con.execute(
        f"SELECT {_card(con)} FROM samples WHERE ({q} {past} ? OR ({q} = ? AND row_id > ?) OR "
        f"{q} IS NULL) {sel.order_limit(browse.columns(con))} LIMIT {LIMIT}",
        [anchor[0], anchor[0], anchor[1]]).fetchall()]  # fmt: skip


def bench_order(con: Any, sort: str, deep: int) -> list[str]:
    sel, out = Selection(sort=sort), []
    col = sort.split()[0] if sort else None
    first_t, first = _timed(lambda: browse.page(con, sel, limit=LIMIT))
    out.append(f"  page 1: {first_t:.3f} s")
    for n in (2, deep):
        prev = _offset_ids(con, sel, n - 1)  # the page before, to take the cursor from
        row = browse.rows_by_id(con, [prev[-1]], (col,) if col else ())[prev[-1]]
        value = row.get(col) if col else None
        t, got = _timed(lambda r=row, v=value: browse.page(con, sel, after=r["row_id"], value=v,
                                                             limit=LIMIT))  # fmt: skip
        off_t, off = _timed(lambda n=n: _offset_ids(con, sel, n))
        assert [g["row_id"] for g in got] == off, "keyset and OFFSET pages differ"
        line = f"  page {n:,}: keyset {t:.3f} s | OFFSET {off_t:.3f} s ({off_t / t:.1f}x)"
        if col and value is not None:
            or_t, ids = _timed(lambda r=row, v=value: _or_form_ids(con, sel, (v, r["row_id"])))
            assert ids == off
            line += f" | one OR condition {or_t:.3f} s ({or_t / t:.1f}x)"
        out.append(line)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--home", type=Path, help="a workspace holding --name (else: generate one)")
    ap.add_argument("--name", default="sortbench")
    ap.add_argument("--deep", type=int, default=200, help="the deep page to time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sortbench-") as tmp:
        home = args.home
        if home is None:
            home = Path(tmp)
            t0 = time.perf_counter()
            synth.generate(args.name, args.rows, max(1, args.rows // 2_000_000), home, seed=7,
                           concepts=False)  # fmt: skip
            print(f"generated {args.rows:,} rows in {time.perf_counter() - t0:.0f} s")
        con = connect(args.name, home)
        n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
        print(f"{args.name}: {n:,} rows, {LIMIT} a page; best of 3 runs (a ratio: baseline ÷ "
              "keyset)")
        for sort in ORDERS:
            print(sort or "row order (reference)")
            print("\n".join(bench_order(con, sort, args.deep)))
        con.close()


if __name__ == "__main__":
    main()
