"""Filter impact and cluster mixtures at scale, against the plain count of the same filter.

    .venv/bin/python bench/impact.py [--rows 1000000] [--shards 8] [--where "toxicity <= 0.3"]

A synthetic parquet-backed dataset (:mod:`backend.synth`: Zipf nouns as concepts, clusters,
skewed scores, URLs) of ``--rows`` rows is written to a temp folder. Timed, in this process,
on the bounded connection the app uses:
- baseline: ``count(*)`` of the filter (what the selection bar runs);
- reading the impact's inputs (concept hits, cluster labels, score catalog; cached by the UI);
- ``impact.measure`` of the filter against the whole dataset (every group kind), warm;
- the mixture pool (row ids + clusters of every row) and a flattened 10%-of-rows draw.
Prints seconds, rows/s and the ratio to the baseline.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--where", default="toxicity <= 0.3")
    args = p.parse_args(argv)

    from backend import bounded, impact, mixture, synth
    from backend.selection import Selection
    from backend.store import connect

    with tempfile.TemporaryDirectory(prefix="bench-impact-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        synth.generate("b", args.rows, args.shards, root)
        print(f"synthetic dataset: {args.rows:,} rows in {time.perf_counter() - t:.1f} s "
              f"({platform.processor() or platform.machine()}, {os.cpu_count()} cpus)")
        con = bounded.wrap(connect("b", root))
        sel = Selection(sql=args.where)
        with bounded.trust_local_user():
            t = time.perf_counter()
            n = con.execute(f"SELECT count(*) FROM samples WHERE {args.where}").fetchone()[0]
            base_s = time.perf_counter() - t
            t = time.perf_counter()
            got = impact.dataset_inputs(con, "b", root)
            in_s = time.perf_counter() - t
            kw = dict(hits=got["hits"], labels=got["labels"], scores=got["scores"], name="b")
            impact.measure(con, Selection(), sel, **kw)  # warm
            t = time.perf_counter()
            imp = impact.measure(con, Selection(), sel, **kw)
            m_s = time.perf_counter() - t
            t = time.perf_counter()
            pool = mixture.pool(con, Selection(), "b")
            pool_s = time.perf_counter() - t
            t = time.perf_counter()
            draw = mixture.resample(pool, mixture.flatten(pool.counts()), args.rows // 10, 0)
            draw_s = time.perf_counter() - t
        con.close()
    kinds = {}
    for g in imp.groups:
        kinds[g.kind] = kinds.get(g.kind, 0) + 1
    print(f"filter `{args.where}` keeps {n:,} of {args.rows:,}; impact: {len(imp.groups):,} "
          f"groups {kinds}, {len(imp.flags())} flagged, {len(got['hits'][0]):,} concept hits")
    print(f"{'step':<34}{'seconds':>9}{'rows/s':>14}{'x baseline':>12}")
    for label, s in (("baseline count(*) of the filter", base_s),
                     ("impact inputs (read once, cached)", in_s),
                     ("impact.measure, all groups (warm)", m_s),
                     ("mixture pool (row_id, cluster)", pool_s),
                     (f"mixture draw of {len(draw.row_ids):,} (flat)", draw_s)):  # fmt: skip
        print(f"{label:<34}{s:>9.3f}{args.rows / s:>14,.0f}{s / base_s:>12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
