"""The app's queries over 10^7 and 10^8 rows: synthetic parquet-backed datasets (backend.synth).

    flock /tmp/bigrun.lock .venv/bin/python bench/scale_app.py [--dir /work/scale]
        [--sizes 10000000,100000000] [--repeats 5] [--json out.json]

Data: ``backend.synth`` datasets ``syn-<rows>`` under ``--dir`` (generated when missing, reused
when their manifest says the same rows and seed): zstd parquet shards of ~2M rows, ``samples`` a
view over them; no images, no vectors (kNN at 10^7 is bench/search.py's).

Measured, with the backend functions the pages call (not hand-written SQL): counts (all rows,
``nsfw >= 0.5``, caption text "lighthouse" — the Selection's whole-word match (``contains``, then a
regex on the rows it keeps), a full
scan of the captions, since a keyword index over 10^8 captions is not built here —, one shard,
one cluster), the first Browse page (no filter; ``nsfw >= 0.5``), the filter widgets' column
facts, the Map page's frame, density grid, 50k-point sample and cluster table (live queries), the
whole Map open live and from what the build prepared (backend.map_prepared), the Concepts page's
open (counts only) against loading every hit as it did before, a concept filter as a join on the
hits file against the row-id list it was before, and the Safety page's flag counts.
``--columns``: a copy of each size gains one column the way map/score/dedup add them (a file per
shard joined into the view, backend.column_files); the add is timed and the app's queries on it
(pages, details and lookups by id go by position: backend.rowfetch) are set against the same
queries on the shards alone (their runs alternating, so load weighs on both alike) and against
the same answers read through the joined view, as they were before (``--before-repeats``).
``--columns-only`` runs just those.

Each query: the first call on a fresh connection ("first"; the OS file cache is not dropped, so
this is a new-connection first run, not a cold disk), then p50/p95 of ``--repeats`` more.

Baseline, in the same run: the same queries on a native DuckDB table copy of the smallest size
(``CREATE TABLE samples AS SELECT * FROM read_parquet(...)``); ratio = parquet view ÷ native
table (p50). Also printed: generation time and bytes on disk per size.
"""

from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import duckdb  # noqa: E402

from backend import browse, keyword, keyword_build, mapview, paths, synth  # noqa: E402
from backend.concepts.run import load  # noqa: E402
from backend.manifest import read_manifest  # noqa: E402
from backend.search import resolve_keywords  # noqa: E402
from backend.selection import Selection  # noqa: E402
from backend.store import connect, create_store, parquet_parts, swap_in  # noqa: E402

SHARD_ROWS = 2_000_000
SEED = 0


def dataset(root: Path, rows: int) -> tuple[str, dict[str, Any]]:
    """``syn-<rows>``: reused when its manifest matches, else generated (and timed)."""
    name = f"syn-{rows}"
    rec = read_manifest(paths.manifest_path(name, root)).get("steps", {}).get("ingest", {})
    p = rec.get("params", {})
    if p.get("rows") == rows and p.get("seed") == SEED and parquet_parts(name, root):
        return name, {**rec, "reused": True}
    shards = max(1, -(-rows // SHARD_ROWS))
    print(f"generating {name}: {rows:,} rows in {shards} shards (shards an interrupted run "
          "finished are kept) …", flush=True)  # fmt: skip
    t0 = time.perf_counter()

    def progress(phase: str, done: int, total: int) -> None:
        print(f"  {name} {phase}: {done}/{total} at {time.perf_counter() - t0:.0f} s", flush=True)

    rec = synth.generate(name, rows, shards, root, SEED, progress, overwrite=True, resume=True)
    return name, {**rec, "reused": False}


def native_copy(root: Path, name: str) -> str:
    """The baseline: dataset ``<name>-native`` whose ``samples`` is a DuckDB table."""
    copy = f"{name}-native"
    if paths.store_path(copy, root).is_file():
        return copy
    ds = paths.dataset_dir(copy, root)
    ds.mkdir(parents=True, exist_ok=True)
    tmp = ds / ".store-new.duckdb"
    tmp.unlink(missing_ok=True)
    con = create_store(tmp)
    files = ", ".join(f"'{f}'" for f in parquet_parts(name, root))
    con.execute(f"CREATE TABLE samples AS SELECT * FROM read_parquet([{files}])")
    con.close()
    swap_in(tmp, ds)
    return copy


def queries(name: str, root: Path, concepts: bool) -> dict[str, Callable[[Any], Any]]:
    """Label → function of a connection, each one call a page makes."""
    from backend import safety_checks  # the Safety page's count query

    frame: dict[str, Any] = {}

    def facts(con):
        return (browse.column_ranges(con, browse.numeric_columns(con)),
                browse.shard_counts(con))  # fmt: skip

    def map_frame(con):
        frame["f"] = mapview.view(con, live=True)
        return frame["f"]

    def checks(con):
        return safety_checks.counts(con, Selection(), safety_checks.available(browse.columns(con)))

    def map_open(live: bool):
        def run(con):  # what the Map page asks for on open, in its order
            ext = mapview.extent(con, live=live)
            mapview.density(con, Selection(), ext, live=live)
            mapview.clusters(con, Selection(), [], live=live)
            mapview.view(con, live=live)
            return len(mapview.points(con, Selection(), live=live).row_id)

        return run

    q: dict[str, Callable[[Any], Any]] = {
        "count: all rows": lambda c: browse.count(c, Selection()),
        "count: nsfw >= 0.5": lambda c: browse.count(c, Selection(ranges={"nsfw": (0.5, None)})),
        "count: caption has 'lighthouse'": lambda c: browse.count(c, Selection(text="lighthouse")),
        "count: one shard": lambda c: browse.count(c, Selection(shards=["part-00001"])),
        "count: one cluster": lambda c: browse.count(c, Selection(values={"cluster": [7]})),
        "first page (48 rows)": lambda c: len(browse.page(c, Selection())),
        "first page, nsfw >= 0.5": lambda c: len(
            browse.page(c, Selection(ranges={"nsfw": (0.5, None)}))),
        "filter facts (ranges, shards)": facts,
        "map: frame (quantiles)": map_frame,
        "map: density grid": lambda c: int(mapview.density(
            c, Selection(), frame.get("f") or mapview.view(c, live=True), live=True).counts.sum()),
        "map: 50k-point sample": lambda c: len(mapview.points(c, Selection(), live=True).row_id),
        "map: cluster table": lambda c: len(mapview.clusters(c, Selection(), [], live=True)),
        "map: open, live (extent, grid, clusters, frame, sample)": map_open(True),
        "map: open, prepared by the build": map_open(False),
        "safety: flag counts": checks,
    }  # fmt: skip
    if keyword.index_dir(name, root).is_dir():
        q["count: caption keyword 'lighthouse' (BM25 index)"] = lambda c: browse.count(
            c, resolve_keywords(name, Selection(keywords="lighthouse"), root)
        )
    if concepts:
        from backend.concepts import rows_with, selection_for

        res = load(name, synth.VOCAB, root)
        q["concepts: open (counts, summary; hits not read)"] = lambda c: len(
            load(name, synth.VOCAB, root).counts
        )
        q["concepts: load every hit (the page before)"] = lambda c: len(
            load(name, synth.VOCAB, root).rows
        )
        q["count: concept 'dog', join on hits"] = lambda c: browse.count(
            c, selection_for(res, ["dog"])
        )
        q["count: concept 'dog', row-id list (before)"] = lambda c: browse.count(
            c, Selection(row_ids=tuple(rows_with(load(name, synth.VOCAB, root), ["dog"]).tolist()))
        )
        q["count: concept 'lighthouse', join on hits"] = lambda c: browse.count(
            c, selection_for(res, ["lighthouse"])
        )
    return q


Queries = dict[str, Callable[[Any], Any]]


def measure(name: str, root: Path, repeats: int, concepts: bool,
            which: Queries | None = None) -> dict[str, dict[str, Any]]:  # fmt: skip
    con = connect(name, root)
    out = {}
    try:
        for label, fn in (which or queries(name, root, concepts)).items():
            t0 = time.perf_counter()
            fn(con)
            first = time.perf_counter() - t0
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn(con)
                times.append(time.perf_counter() - t0)
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            out[label] = {"first_s": first, "p50_s": statistics.median(times), "p95_s": p95,
                          "repeats": repeats}  # fmt: skip
            print(
                f"  {name:>20s}  {label:32s} first {first * 1e3:9.1f} ms  "
                f"p50 {out[label]['p50_s'] * 1e3:9.1f} ms",
                flush=True,
            )
    finally:
        con.close()
    return out


def measure_pair(names: tuple[str, str], root: Path, repeats: int,
                 which: Queries) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """``which`` on two stores, each query's runs alternating between them (a shared machine's
    load then weighs on both alike); a query about the added column runs on the first only."""
    cons = [connect(n, root) for n in names]
    outs: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    try:
        for label, fn in which.items():
            both = [0, 1] if "added" not in label else [0]
            times: list[list[float]] = [[], []]
            for _ in range(repeats + 1):  # the first run of each is reported apart
                for i in both:
                    t0 = time.perf_counter()
                    fn(cons[i])
                    times[i].append(time.perf_counter() - t0)
            for i in both:
                rest = sorted(times[i][1:])
                outs[i][label] = {"first_s": times[i][0], "p50_s": statistics.median(rest),
                                  "p95_s": rest[min(len(rest) - 1, round(0.95 * (len(rest) - 1)))],
                                  "repeats": repeats}  # fmt: skip
            print(f"  {label:44s} " + "  ".join(
                f"{names[i]}: p50 {outs[i][label]['p50_s'] * 1e3:8.1f} ms" for i in both),
                flush=True)  # fmt: skip
    finally:
        for c in cons:
            c.close()
    return outs


def columns_copy(root: Path, name: str) -> tuple[str, dict[str, Any]]:
    """``<name>-cols``: the same shards (symlinked), then one score column added the way the
    score step adds it (backend.columns.add_columns: one file per shard, joined into the view);
    returns its name and the add's time, RSS and bytes written."""
    import shutil

    import numpy as np
    import pyarrow as pa

    from backend import column_files
    from backend.columns import add_columns

    copy = f"{name}-cols"
    ds = paths.dataset_dir(copy, root)
    if ds.exists():
        for p in [ds, *ds.rglob("*")]:
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | 0o200)
        shutil.rmtree(ds)
    (ds / "parts").mkdir(parents=True)
    parts = parquet_parts(name, root)
    for p in parts:
        (ds / "parts" / Path(p).name).symlink_to(p)
    shutil.copy(paths.manifest_path(name, root), paths.manifest_path(copy, root))
    tmp = ds / ".store-new.duckdb"
    con = create_store(tmp)
    files = ", ".join(f"'{f}'" for f in parts)
    con.execute(f"CREATE VIEW samples AS SELECT * FROM read_parquet([{files}])")
    n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    con.close()
    swap_in(tmp, ds)
    ids = np.arange(n, dtype=np.int64)
    quality = ((ids * 2654435761) % 1000 / 1000).astype(np.float32)  # any value per row
    table = pa.table({"row_id": ids, "quality": quality})
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    add_columns(copy, table, root)
    took = time.perf_counter() - t0
    del table, ids, quality
    written = sum(Path(f).stat().st_size for f in column_files.all_files(copy, root))
    return copy, {"add_s": took, "bytes_written": written, "rows": n,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "peak_rss_before_bytes": rss0}  # fmt: skip


def _spread_ids(con, k: int = 48) -> list[int]:
    n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    return list(range(7, n, max(1, n // k)))[:k]


def _middle(con) -> int:
    return con.execute("SELECT count(*) FROM samples").fetchone()[0] // 2 + 7


QUALITY = Selection(ranges={"quality": (0.5, None)})
COLUMN_QUERIES: dict[str, Callable[[Any], Any]] = {
    "count: all rows": lambda c: browse.count(c, Selection()),
    "count: nsfw >= 0.5": lambda c: browse.count(c, Selection(ranges={"nsfw": (0.5, None)})),
    "count: quality >= 0.5 (added column)": lambda c: browse.count(c, QUALITY),
    "first page (48 rows)": lambda c: len(browse.page(c, Selection())),
    "first page, nsfw >= 0.5": lambda c: len(
        browse.page(c, Selection(ranges={"nsfw": (0.5, None)}))),
    "page after the middle row": lambda c: len(browse.page(c, Selection(), after=_middle(c))),
    "first page, quality >= 0.5 (added column)": lambda c: len(browse.page(c, QUALITY)),
    "row details (every column, middle row)": lambda c: len(browse.row(c, _middle(c))),
    "rows by id (48 spread ids: search hits)": lambda c: len(
        browse.rows_by_id(c, _spread_ids(c))),
    "map: density grid": lambda c: int(mapview.density(
        c, Selection(), mapview.extent(c, live=True), live=True).counts.sum()),
}  # fmt: skip
_CARDS = "row_id, key, caption, url, width, height, shard, storage"
# The same answers through the joined ``samples`` view, as Browse and Search read them before
# backend.rowfetch (run on the store with the added column only).
JOINED_VIEW: dict[str, Callable[[Any], Any]] = {
    "first page (48 rows)": lambda c: len(c.execute(
        f"SELECT {_CARDS} FROM samples WHERE row_id > -1 ORDER BY row_id LIMIT 48").fetchall()),
    "first page, quality >= 0.5 (added column)": lambda c: len(c.execute(
        f"SELECT {_CARDS} FROM samples WHERE quality >= 0.5 AND row_id > -1 ORDER BY row_id "
        "LIMIT 48").fetchall()),
    "row details (every column, middle row)": lambda c: len(c.execute(
        "SELECT * FROM samples WHERE row_id = ?", [_middle(c)]).fetchall()),
    "rows by id (48 spread ids: search hits)": lambda c: len(c.execute(
        f"SELECT {_CARDS} FROM samples WHERE row_id IN (SELECT unnest(?::BIGINT[]))",
        [_spread_ids(c)]).fetchall()),
}  # fmt: skip


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def fmt_ms(s: float | None) -> str:
    return "–" if s is None else f"{s * 1e3:,.0f}" if s >= 0.1 else f"{s * 1e3:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("/work/scale"))
    ap.add_argument("--sizes", default="10000000,100000000")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-native", action="store_true", help="skip the native-table baseline")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keywords", action="store_true", help="build and time the BM25 index too")
    ap.add_argument(
        "--columns",
        action="store_true",
        help="add a column per shard to a copy "
        "of each size and time queries through the joined view against the shards",
    )
    ap.add_argument(
        "--columns-only",
        action="store_true",
        help="with --columns: only those queries (no full query table, no native baseline)",
    )
    ap.add_argument(
        "--before-repeats",
        type=int,
        default=1,
        help="repeats of the joined-view "
        "queries the column files' fast path replaced (each up to ~40 s at 10^7)",
    )
    a = ap.parse_args()
    a.no_native |= a.columns_only
    root = a.dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    sizes = [int(float(s)) for s in a.sizes.split(",")]
    results: dict[str, Any] = {"sizes": {}, "machine": {"cpus": os.cpu_count(),
                               "python": platform.python_version(),
                               "duckdb": duckdb.__version__}}  # fmt: skip
    native = None
    for rows in sizes:
        name, rec = dataset(root, rows)
        entry = {"name": name, "rows": rows, "generate_s": rec.get("seconds"),
                 "generate_phases": rec.get("phases"), "reused": rec["reused"],
                 "bytes_parts": dir_bytes(paths.dataset_dir(name, root) / "parts"),
                 "bytes_total": dir_bytes(paths.dataset_dir(name, root))}  # fmt: skip
        if a.keywords and not keyword.index_dir(name, root).is_dir():
            t0 = time.perf_counter()
            kw = keyword_build.build_dataset(name, root)
            entry["keyword_index"] = {"seconds": time.perf_counter() - t0,
                                      "bytes": kw["size_bytes"]}  # fmt: skip
            print(f"keyword index of {name}: {entry['keyword_index']['seconds']:.0f} s, "
                  f"{kw['size_bytes'] / 1e9:.2f} GB", flush=True)  # fmt: skip
        entry["queries"] = {} if a.columns_only else measure(name, root, a.repeats, True)
        if a.columns:
            copy, added = columns_copy(root, name)
            print(
                f"added a column to {copy}: {added['add_s']:.1f} s, "
                f"{added['bytes_written'] / 1e6:.0f} MB written",
                flush=True,
            )
            joined, shards = measure_pair((copy, name), root, a.repeats, COLUMN_QUERIES)
            entry["columns"] = {**added, "joined": joined, "shards_only": shards,
                                "joined_view": measure(copy, root, a.before_repeats, False,
                                                       JOINED_VIEW)}  # fmt: skip
        results["sizes"][str(rows)] = entry
        if native is None and not a.no_native:
            t0 = time.perf_counter()
            copy = native_copy(root, name)
            native = {"name": copy, "rows": rows, "copy_s": time.perf_counter() - t0,
                      "bytes": dir_bytes(paths.dataset_dir(copy, root)),
                      "queries": measure(copy, root, a.repeats, concepts=False)}  # fmt: skip
            results["native_baseline"] = native
    results["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    print("\nsizes: " + "; ".join(
        f"{int(r):,} rows: {e['bytes_total'] / 1e9:.2f} GB on disk, generated in "
        f"{e['generate_s']:.0f} s{' (earlier run)' if e['reused'] else ''}"
        for r, e in results["sizes"].items()))  # fmt: skip
    if native:
        print(
            f"baseline: native DuckDB table of {native['rows']:,} rows "
            f"({native['bytes'] / 1e9:.2f} GB, copied in {native['copy_s']:.0f} s)"
        )
    head = "| query (ms) |"
    rule = "|---|"
    for r in results["sizes"]:
        head += f" {int(r):.0e} first | p50 | p95 |"
        rule += "---:|---:|---:|"
    if native:
        head += f" native {native['rows']:.0e} p50 | parquet ÷ native |"
        rule += "---:|---:|"
    print(head + "\n" + rule)
    labels = next(iter(results["sizes"].values()))["queries"]
    for label in labels:
        line = f"| {label} |"
        for e in results["sizes"].values():
            q = e["queries"].get(label, {})
            line += f" {fmt_ms(q.get('first_s'))} | {fmt_ms(q.get('p50_s'))} | " \
                    f"{fmt_ms(q.get('p95_s'))} |"  # fmt: skip
        if native:
            nq = native["queries"].get(label)
            pq = results["sizes"][str(native["rows"])]["queries"][label]
            line += (f" {fmt_ms(nq['p50_s'])} | {pq['p50_s'] / nq['p50_s']:.2f} |" if nq
                     else " – | – |")  # fmt: skip
        print(line)
    print(
        f"peak RSS of this process: {results['peak_rss_bytes'] / 1e9:.2f} GB; "
        f"{os.cpu_count()} CPUs shared with other work"
    )
    for r, e in results["sizes"].items():
        if "columns" not in e:
            continue
        c = e["columns"]
        print(f"\n{int(r):,} rows: one float column added per shard in {c['add_s']:.1f} s "
              f"({c['bytes_written'] / 1e6:.0f} MB); the app's queries on that store (ms, p50; "
              "pages and lookups by position, backend.rowfetch) against the shards alone and "
              "against the same answer read through the joined view (before):\n"
              "| query | with column files | shards alone | ÷ shards | joined view (before) "
              "| before ÷ now |\n|---|---:|---:|---:|---:|---:|")  # fmt: skip
        for label, q in c["joined"].items():
            b = c["shards_only"].get(label)
            v = c.get("joined_view", {}).get(label)
            print(f"| {label} | {fmt_ms(q['p50_s'])} | {fmt_ms(b and b['p50_s'])} | "
                  + (f"{q['p50_s'] / b['p50_s']:.2f} |" if b else "– |")
                  + (f" {fmt_ms(v['p50_s'])} | {v['p50_s'] / q['p50_s']:.1f}× |" if v
                     else " – | – |"))  # fmt: skip
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
