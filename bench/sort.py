"""A sorted Browse page: keyset paging (``backend.keyset``) against the baselines it replaced.

    .venv/bin/python bench/sort.py [--rows 1000000] [--added]
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
        rid, value = _cursor(con, sel, col, (n - 1) * LIMIT - 1)  # the last row of page n - 1
        t, got = _timed(lambda r=rid, v=value: browse.page(con, sel, after=r, value=v,
                                                             limit=LIMIT))  # fmt: skip
        ids = [g["row_id"] for g in got]
        line = f"  page {n:,}: keyset {t:.3f} s"
        line += _baseline("OFFSET", t, ids, lambda n=n: _offset_ids(con, sel, n))
        if col and value is not None:
            line += _baseline("one OR condition", t, ids,
                              lambda r=rid, v=value: _or_form_ids(con, sel, (v, r)))  # fmt: skip
        out.append(line)
    return out


def _cursor(con: Any, sel: Selection, col: str | None, at: int) -> tuple[int, Any]:
    """(row id, sort value) of the row at position ``at`` in ``sel``'s order."""
    cols = browse.columns(con)
    got = con.execute(f"SELECT row_id{', ' + quote_ident(col) if col else ''} FROM samples "
                      f"{sel.order_limit(cols)} LIMIT 1 OFFSET {at}").fetchone()  # fmt: skip
    return got[0], (got[1] if col else None)


def _baseline(label: str, keyset_s: float, ids: list[int], run: Any) -> str:
    """`` | label T s (ratio)``, after checking it gives the keyset's page; a baseline that
    fails (out of the store's memory) says so."""
    import duckdb

    try:
        t, got = _timed(run)
    except duckdb.Error as e:
        return f" | {label} failed: {str(e).splitlines()[0][:70]}"
    assert got == ids, f"keyset and {label} pages differ"
    return f" | {label} {t:.3f} s ({t / keyset_s:.1f}x)"


def _add_quality(name: str, rows: int, home: Path) -> None:
    import numpy as np
    import pyarrow as pa

    from backend.columns import add_columns

    t0 = time.perf_counter()
    quality = np.random.default_rng(0).random(rows).astype(np.float32)
    add_columns(name, pa.table({"row_id": np.arange(rows), "quality": quality}), home)
    print(f"added the column quality in {time.perf_counter() - t0:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--home", type=Path, help="a workspace holding --name (else: generate one)")
    ap.add_argument("--name", default="sortbench")
    ap.add_argument("--deep", type=int, default=200, help="the deep page to time")
    ap.add_argument("--added", action="store_true", help="add a column `quality` (uniform "
                    "floats) to the generated dataset, as a step would: pages then go by "
                    "position (backend.rowfetch)")  # fmt: skip
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sortbench-") as tmp:
        home = args.home
        if home is None:
            home = Path(tmp)
            t0 = time.perf_counter()
            synth.generate(args.name, args.rows, max(1, args.rows // 2_000_000), home, seed=7,
                           concepts=False)  # fmt: skip
            print(f"generated {args.rows:,} rows in {time.perf_counter() - t0:.0f} s")
            if args.added:
                _add_quality(args.name, args.rows, home)
        con = connect(args.name, home)
        n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
        print(f"{args.name}: {n:,} rows, {LIMIT} a page; best of 3 runs (a ratio: baseline ÷ "
              "keyset)")
        orders = ORDERS + (("quality DESC",) if "quality" in browse.columns(con) else ())
        for sort in orders:
            print(sort or "row order (reference)")
            print("\n".join(bench_order(con, sort, args.deep)))
        con.close()


if __name__ == "__main__":
    main()
