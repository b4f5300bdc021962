"""Keyword search on synthetic captions: tantivy index build + query latency vs DuckDB ILIKE.

    .venv/bin/python bench/keyword.py [--n 1000000 10000000] [--queries 200] [--dir PATH]

Captions: seeded, 10-50 words each drawn from a Zipf(1.0) vocabulary of 50,000 words (about
120 real English words at the top, then made-up words), written in chunks into a DuckDB table
``samples(row_id, caption)`` like a dataset's store.

Queries (k=50): equal shares of one common word, one rare word, two words, a two-word phrase
taken from a real caption, and a 3-letter prefix. Each is run once untimed (page cache warm,
as in a session), then timed.

Baseline, measured in the same run on the same table: DuckDB ``caption ILIKE '%word%'`` --
the count, and ``LIMIT 50`` (first 50 matches, unranked) -- on a subset of the same queries
(two words = two ILIKEs OR-ed, phrase = '%w1 w2%', prefix = '%pre%'). "x faster" = baseline
p50 / tantivy p50 for the same kind of query.
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's folder comes first on sys.path and its name shadows the standard
# library's ``keyword`` (imported by ``collections``): drop the folder, add the repo root.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from backend import keyword as kw  # noqa: E402
from backend import keyword_build  # noqa: E402

COMMON = (
    "a the of in on with and photo image man woman people at for an white black red blue "
    "green yellow two three old new small large dog cat car house tree street city water sky "
    "view from front background person young girl boy table room sitting standing is are by "
    "wooden stock vector illustration design pattern art beautiful close up portrait light "
    "dark night day sunset beach sea mountain road building window door wall flowers flower "
    "field grass snow winter summer food plate coffee cup hand hands face eyes hair dress "
    "shirt wearing holding looking group family child children baby bird birds horse train "
    "bus boat river lake park garden kitchen chair bed book phone computer logo text sign "
    "map vintage modern abstract colorful isolated top side"
).split()
SYLLABLES = (
    "ka lo mi ne ra to su vi den mar tel pon gri sha quo zel bri fan hol wex dru pim "
    "cor lun bax fen gol yar tup nix"
).split()
VOCAB_SIZE = 50_000
KINDS = ("common", "rare", "two words", "phrase", "prefix")


def vocabulary(seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words, seen = list(COMMON), set(COMMON)
    while len(words) < VOCAB_SIZE:
        w = "".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), rng.integers(2, 5)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def generate(path: Path, n: int, vocab: list[str], seed: int = 0, chunk: int = 1_000_000) -> None:
    """Write ``n`` captions into ``samples`` at ``path``, ``chunk`` rows at a time (vectorised)."""
    rng = np.random.default_rng(seed + 1)
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    cdf = np.cumsum(weights / weights.sum())
    words = pa.array(vocab)
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE samples (row_id BIGINT, caption VARCHAR)")
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        lens = rng.integers(10, 51, m)
        offsets = np.zeros(m + 1, np.int32)
        np.cumsum(lens, out=offsets[1:])
        ids = np.minimum(np.searchsorted(cdf, rng.random(int(offsets[-1]))), len(vocab) - 1)
        lists = pa.ListArray.from_arrays(pa.array(offsets), words.take(pa.array(ids)))
        part = pa.table(  # noqa: F841 - read by DuckDB by name
            {
                "row_id": np.arange(start, start + m, dtype=np.int64),
                "caption": pc.binary_join(lists, " "),
            }
        )
        con.execute("INSERT INTO samples SELECT * FROM part")
    con.close()


def make_queries(
    con: duckdb.DuckDBPyConnection, vocab: list[str], n: int, count: int, seed: int = 0
) -> list[tuple[str, str, list[str]]]:
    """(kind, tantivy query, ILIKE patterns OR-ed) in equal shares of each kind."""
    rng = np.random.default_rng(seed + 2)
    per = max(1, count // len(KINDS))
    out: list[tuple[str, str, list[str]]] = []
    for w in rng.choice(vocab[:100], per, replace=False):
        out.append(("common", w, [f"%{w}%"]))
    for w in rng.choice(vocab[5000:], per, replace=False):
        out.append(("rare", w, [f"%{w}%"]))
    for _ in range(per):
        a, b = rng.choice(vocab[10:2000], 2, replace=False)
        out.append(("two words", f"{a} {b}", [f"%{a}%", f"%{b}%"]))
    rows = rng.integers(0, n, per).tolist()
    caps = con.execute(
        "SELECT caption FROM samples WHERE row_id IN (SELECT unnest(?)) ORDER BY row_id", [rows]
    ).fetchall()
    for (cap,) in caps:
        ws = cap.split()
        i = int(rng.integers(0, len(ws) - 1))
        out.append(("phrase", f'"{ws[i]} {ws[i + 1]}"', [f"%{ws[i]} {ws[i + 1]}%"]))
    for w in rng.choice([v for v in vocab[20:2000] if len(v) >= 4], per, replace=False):
        out.append(("prefix", f"{w[:3]}*", [f"%{w[:3]}%"]))
    return out


def pct(xs: list[float]) -> tuple[float, float]:
    a = np.asarray(xs) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 95))


def timed(fn, items) -> list[float]:
    for it in items:  # warm-up pass
        fn(it)
    out = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        out.append(time.perf_counter() - t)
    return out


class PeakRss:
    """Samples this process's private resident memory (RssAnon) every 50 ms.

    Anonymous memory only: the index files the build reads back are mmapped page cache, which
    the kernel can drop, and the captions are generated in a child process.
    """

    def __enter__(self) -> PeakRss:
        self.peak, self._stop = 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        self.peak = max(self.peak, int(line.split()[1]) * 1024)
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def bench(n: int, work: Path, vocab: list[str], n_queries: int, baseline_per_kind: int) -> None:
    store = work / f"captions-{n}.duckdb"
    if not store.is_file():
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate", str(store), str(n)], check=True)
        print(f"# generated {n:,} captions in {time.perf_counter() - t:.1f} s", flush=True)
    con = duckdb.connect(str(store), read_only=True)
    out = work / f"idx-{n}" / "keyword"
    step = max(1, n // 10)
    last = [0]

    def progress(done: int, total: int) -> None:
        if done - last[0] >= step or done == total:
            last[0] = done
            print(f"#   indexed {done:,}/{total:,}", file=sys.stderr, flush=True)

    with PeakRss() as mem:
        stats = keyword_build.build_index(con, out, progress=progress)
    ix = kw.KeywordIndex.open(out)
    print(
        f"\nn={n:,}: build {stats['seconds']:.1f} s ({n / stats['seconds']:,.0f} rows/s, "
        f"{stats['threads']} threads, heap {stats['heap_mb']} MB), index "
        f"{stats['size_bytes'] / 1e6:,.0f} MB ({stats['size_bytes'] / n:.0f} B/row), "
        f"{stats['segments']} segments, peak private memory during build "
        f"{mem.peak / 2**30:.2f} GiB",
        flush=True,
    )
    queries = make_queries(con, vocab, n, n_queries)
    rng = np.random.default_rng(7)
    allowed = {
        f"{p:g}% scattered": np.sort(rng.choice(n, int(n * p / 100), replace=False))
        for p in (10, 1, 0.1)
    }
    allowed["5% contiguous"] = np.arange(n // 3, n // 3 + n // 20)
    hdr = (
        f"{'kind':<10}{'queries':>8} {'search p50/p95 ms':>19} {'count p50/p95 ms':>18} "
        f"{'ILIKE count p50/p95':>21} {'ILIKE LIMIT 50 p50/p95':>24} "
        f"{'x faster p50 (vs count, vs LIMIT)':>34}"
    )
    print(hdr)
    all_s, all_c, all_bc, all_bl = [], [], [], []
    for kind in (*KINDS, "all"):
        qs = [q for q in queries if kind in ("all", q[0])]
        if kind == "all":
            s, c, bc, bl = all_s, all_c, all_bc, all_bl
        else:
            s = timed(lambda q: ix.search(q[1], k=50), qs)
            c = timed(lambda q: ix.count(q[1]), qs)
            sub = qs[:baseline_per_kind]
            bc = timed_once(con, sub, "SELECT count(*) FROM samples WHERE {w}")
            bl = timed_once(con, sub, "SELECT row_id FROM samples WHERE {w} LIMIT 50")
            all_s += s
            all_c += c
            all_bc += bc
            all_bl += bl
        (s50, s95), (c50, c95), (b50, b95), (l50, l95) = pct(s), pct(c), pct(bc), pct(bl)
        print(
            f"{kind:<10}{len(qs):>8} {s50:>9.1f} /{s95:>7.1f} {c50:>8.1f} /{c95:>7.1f} "
            f"{b50:>10.0f} /{b95:>8.0f} {l50:>12.0f} /{l95:>9.0f} "
            f"{b50 / s50:>20.0f}x, {l50 / s50:>6.1f}x"
        )
    print("search k=50 within `allowed` row ids (all queries):")
    for label, ids in allowed.items():
        ids = ids.astype(np.int64)
        s = timed(lambda q, ids=ids: ix.search(q[1], k=50, allowed=ids), queries)
        s50, s95 = pct(s)
        runs = int(np.count_nonzero(np.diff(ids) != 1)) + 1
        plan = kw._plan(ix.num_docs, len(ids), runs, 50)[0]  # for BM25-scored queries
        print(f"  {label:<16} {len(ids):>11,} ids  {s50:>6.1f} /{s95:>6.1f} ms  plan: {plan}")
    con.close()


def timed_once(con: duckdb.DuckDBPyConnection, qs, sql: str) -> list[float]:
    """Baseline timings: one run each (a full scan; its cache warms after the first query)."""
    out = []
    for _kind, _q, pats in qs:
        where = " OR ".join(["caption ILIKE ?"] * len(pats))
        t = time.perf_counter()
        con.execute(sql.format(w=where), pats).fetchall()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--baseline", type=int, default=10, help="ILIKE queries per kind")
    ap.add_argument("--dir", type=Path, default=None, help="keep generated stores here")
    ap.add_argument("--generate", nargs=2, help=argparse.SUPPRESS)  # child: PATH N
    args = ap.parse_args()
    if args.generate:
        generate(Path(args.generate[0]), int(args.generate[1]), vocabulary())
        return
    work = args.dir or Path(tempfile.mkdtemp(prefix="tailscope-kw-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, {keyword_build.tantivy.__version__}, duckdb "
        f"{duckdb.__version__}"
    )
    vocab = vocabulary()
    try:
        for n in args.n:
            bench(n, work, vocab, args.queries, args.baseline)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
